# httpd for linux/amd64: a static HTTP/1.0 server in one small ELF file (no libc, no loader).
# Usage: httpd PORT FILE. It listens on PORT (all addresses) and answers every request with
# FILE as text/html (or 404 if FILE cannot be opened), one connection at a time, until killed.
# The file starts with its own ELF header: build.sh assembles it and keeps the raw bytes.
        .intel_syntax noprefix
        .set BASE, 0x400000
        .set BUF, 65536
        .text
ehdr:   .byte 0x7f, 'E', 'L', 'F', 2, 1, 1, 0     # ELF64, little endian, version 1, System V
        .quad 0
        .short 2                                  # e_type: an executable
        .short 62                                 # e_machine: x86-64
        .long 1                                   # e_version
        .quad BASE + (start - ehdr)               # e_entry
        .quad phdr - ehdr                         # e_phoff
        .quad 0                                   # e_shoff: no sections
        .long 0                                   # e_flags
        .short 64, 56, 1                          # e_ehsize, e_phentsize, e_phnum
        .short 0, 0, 0                            # e_shentsize, e_shnum, e_shstrndx
phdr:   .long 1                                   # PT_LOAD
        .long 5                                   # read and execute
        .quad 0, BASE, BASE                       # p_offset, p_vaddr, p_paddr
        .quad end - ehdr, end - ehdr              # p_filesz, p_memsz
        .quad 0x1000                              # p_align

.macro sys number
        mov eax, \number
        syscall
.endm

start:  cmp qword ptr [rsp], 3                    # argc
        jne usage
        mov rsi, [rsp + 16]                       # argv[1]: the port, in decimal
        mov r15, [rsp + 24]                       # argv[2]: the file
        xor eax, eax
digit:  movzx ecx, byte ptr [rsi]
        test ecx, ecx
        jz parsed
        sub ecx, '0'
        cmp ecx, 9
        ja usage
        imul eax, eax, 10
        add eax, ecx
        cmp eax, 65535
        ja usage
        inc rsi
        jmp digit
parsed: test eax, eax
        jz usage
        xchg al, ah                               # the port in network byte order
        shl eax, 16
        or eax, 2                                 # AF_INET, the port, address 0.0.0.0
        push 0
        push rax
        mov r13, rsp                              # the struct sockaddr_in
        mov edi, 2                                # socket(AF_INET, SOCK_STREAM, 0)
        mov esi, 1
        xor edx, edx
        sys 41
        test rax, rax
        js fail
        mov r12, rax
        mov rdi, r12                              # bind(socket, &address, 16)
        mov rsi, r13
        mov edx, 16
        sys 49
        test rax, rax
        jnz fail
        mov rdi, r12                              # listen(socket, 16)
        mov esi, 16
        sys 50
        test rax, rax
        jnz fail
        sub rsp, BUF
serve:  mov rdi, r12                              # accept(socket, 0, 0)
        xor esi, esi
        xor edx, edx
        sys 43
        test rax, rax
        js serve
        mov r14, rax
        mov rdi, r14                              # read the request (its content is not used)
        mov rsi, rsp
        mov edx, BUF
        sys 0
        mov rdi, r15                              # open(file, O_RDONLY)
        xor esi, esi
        xor edx, edx
        sys 2
        test rax, rax
        js missing
        mov rbx, rax
        lea rsi, [rip + ok]
        mov edx, ok_end - ok
        call send
copy:   mov rdi, rbx                              # read(file, buffer, BUF)
        mov rsi, rsp
        mov edx, BUF
        sys 0
        test rax, rax
        jle closef
        mov rsi, rsp
        mov rdx, rax
        call send
        test rax, rax
        jns copy
closef: mov rdi, rbx
        sys 3
        jmp done
missing:
        lea rsi, [rip + notfound]
        mov edx, notfound_end - notfound
        call send
done:   mov rdi, r14                              # close(connection)
        sys 3
        jmp serve

send:   mov rdi, r14                              # sendto(connection, rsi, rdx, MSG_NOSIGNAL, 0, 0)
        mov r10d, 0x4000
        xor r8d, r8d
        xor r9d, r9d
        sys 44
        ret

usage:  lea rsi, [rip + usage_text]
        mov edx, usage_end - usage_text
        mov ebx, 2
        jmp die
fail:   lea rsi, [rip + fail_text]
        mov edx, fail_end - fail_text
        mov ebx, 1
die:    mov edi, 2                                # write(stderr, …), then exit
        sys 1
        mov edi, ebx
        sys 60

ok:     .ascii "HTTP/1.0 200 OK\r\nContent-Type: text/html; charset=utf-8\r\nConnection: close\r\n\r\n"
ok_end:
notfound:
        .ascii "HTTP/1.0 404 Not Found\r\nContent-Type: text/plain\r\nConnection: close\r\n\r\nnot found\n"
notfound_end:
usage_text:
        .ascii "usage: httpd PORT FILE\n"
usage_end:
fail_text:
        .ascii "httpd: cannot listen on that port\n"
fail_end:
end:
