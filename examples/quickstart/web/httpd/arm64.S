// httpd for linux/arm64: a static HTTP/1.0 server in one small ELF file (no libc, no loader).
// Usage: httpd PORT FILE. It listens on PORT (all addresses) and answers every request with
// FILE as text/html (or 404 if FILE cannot be opened), one connection at a time, until killed.
// The file starts with its own ELF header: build.sh assembles it and keeps the raw bytes.
        .set BASE, 0x400000
        .set BUF, 65536
        .text
ehdr:   .byte 0x7f, 'E', 'L', 'F', 2, 1, 1, 0     // ELF64, little endian, version 1, System V
        .quad 0
        .short 2                                  // e_type: an executable
        .short 183                                // e_machine: AArch64
        .long 1                                   // e_version
        .quad BASE + (start - ehdr)               // e_entry
        .quad phdr - ehdr                         // e_phoff
        .quad 0                                   // e_shoff: no sections
        .long 0                                   // e_flags
        .short 64, 56, 1                          // e_ehsize, e_phentsize, e_phnum
        .short 0, 0, 0                            // e_shentsize, e_shnum, e_shstrndx
phdr:   .long 1                                   // PT_LOAD
        .long 5                                   // read and execute
        .quad 0, BASE, BASE                       // p_offset, p_vaddr, p_paddr
        .quad end - ehdr, end - ehdr              // p_filesz, p_memsz
        .quad 0x1000                              // p_align

.macro sys number
        mov x8, \number
        svc 0
.endm

start:  ldr x0, [sp]                              // argc
        cmp x0, 3
        b.ne usage
        ldr x1, [sp, 16]                          // argv[1]: the port, in decimal
        ldr x21, [sp, 24]                         // argv[2]: the file
        mov x2, 0
        mov x4, 10
        mov x5, 65535
digit:  ldrb w3, [x1], 1
        cbz w3, parsed
        sub w3, w3, '0'
        cmp w3, 9
        b.hi usage
        madd x2, x2, x4, x3
        cmp x2, x5
        b.hi usage
        b digit
parsed: cbz x2, usage
        rev16 w2, w2                              // the port in network byte order
        lsl x2, x2, 16
        orr x2, x2, 2                             // AF_INET, the port, address 0.0.0.0
        sub sp, sp, 16
        stp x2, xzr, [sp]
        mov x22, sp                               // the struct sockaddr_in
        mov x0, 2                                 // socket(AF_INET, SOCK_STREAM, 0)
        mov x1, 1
        mov x2, 0
        sys 198
        tbnz x0, 63, fail
        mov x19, x0
        mov x0, x19                               // bind(socket, &address, 16)
        mov x1, x22
        mov x2, 16
        sys 200
        cbnz x0, fail
        mov x0, x19                               // listen(socket, 16)
        mov x1, 16
        sys 201
        cbnz x0, fail
        sub sp, sp, BUF
serve:  mov x0, x19                               // accept(socket, 0, 0)
        mov x1, 0
        mov x2, 0
        sys 202
        tbnz x0, 63, serve
        mov x20, x0
        mov x0, x20                               // read the request (its content is not used)
        mov x1, sp
        mov x2, BUF
        sys 63
        mov x0, -100                              // openat(AT_FDCWD, file, O_RDONLY)
        mov x1, x21
        mov x2, 0
        mov x3, 0
        sys 56
        tbnz x0, 63, missing
        mov x23, x0
        adr x1, ok
        mov x2, ok_end - ok
        bl send
copy:   mov x0, x23                               // read(file, buffer, BUF)
        mov x1, sp
        mov x2, BUF
        sys 63
        cmp x0, 0
        b.le closef
        mov x1, sp
        mov x2, x0
        bl send
        tbz x0, 63, copy
closef: mov x0, x23
        sys 57
        b done
missing:
        adr x1, notfound
        mov x2, notfound_end - notfound
        bl send
done:   mov x0, x20                               // close(connection)
        sys 57
        b serve

send:   mov x0, x20                               // sendto(connection, x1, x2, MSG_NOSIGNAL, 0, 0)
        mov x3, 0x4000
        mov x4, 0
        mov x5, 0
        sys 206
        ret

usage:  adr x1, usage_text
        mov x2, usage_end - usage_text
        mov x19, 2
        b die
fail:   adr x1, fail_text
        mov x2, fail_end - fail_text
        mov x19, 1
die:    mov x0, 2                                 // write(stderr, …), then exit
        sys 64
        mov x0, x19
        sys 93

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
        .balign 4
end:
