//! The cases of the differential suite: RUN-less Dockerfiles over the Dockerfile reference,
//! instruction by instruction, and the build contexts they copy from.

use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use crate::Image;

/// Which build context a case copies from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Ctx {
    /// Files of every kind and mode ([`write_context`]).
    Std,
    /// A context with a `.dockerignore`.
    Ignore,
    /// A context with both a `.dockerignore` and the Dockerfile's own `Dockerfile.dockerignore`.
    OwnIgnore,
    /// A `.dockerignore` whose patterns read differently as shell globs (`{a,b}`, `[!a]`).
    Patterns,
}

/// One Dockerfile built by both builders. `%BASE%` stands for the base image in the loopback
/// registry, `%ONBUILD%` for an image on it with `ONBUILD` triggers, `%LINKED%` and
/// `%UNLINKED%` for images whose second layer upgrades or removes a file the first hardlinked
/// (`linked_bases` in `tests/fidelity.rs`), `%DISTRO%` for a base shaped like a real
/// distribution (merged `/usr`, whiteouts, a config with `USER`, …).
pub(crate) struct Case {
    pub(crate) name: &'static str,
    pub(crate) dockerfile: &'static str,
    pub(crate) ctx: Ctx,
    /// More context files (path, text).
    pub(crate) extra: &'static [(&'static str, &'static str)],
    pub(crate) args: &'static [(&'static str, &'static str)],
    pub(crate) target: Option<&'static str>,
    /// Why buildah 1.28's result is not BuildKit's, when it is not.
    pub(crate) exception: Option<&'static str>,
    /// What buildah builds instead, to give BuildKit's result (an exception).
    pub(crate) buildah: Option<&'static str>,
    /// Turns buildah's image into BuildKit's (an exception).
    pub(crate) fix: Option<fn(&mut Image)>,
    /// Checks on hephy's image itself.
    pub(crate) expect: Option<fn(&Image) -> Vec<String>>,
    /// BuildKit refuses the build (buildah builds it): hephy must fail, saying this.
    pub(crate) refused: Option<&'static str>,
}

const fn c(name: &'static str, dockerfile: &'static str) -> Case {
    Case {
        name,
        dockerfile,
        ctx: Ctx::Std,
        extra: &[],
        args: &[],
        target: None,
        exception: None,
        buildah: None,
        fix: None,
        expect: None,
        refused: None,
    }
}

const SETUID: &str = "buildah 1.28 drops setuid/setgid bits of copied files (buildah#574, fixed after 1.28 by buildah#4411); Docker keeps them (moby#38152)";

/// buildah's image with the setuid and setgid bits Docker keeps (`su` 4755, `sg` 2755).
fn keep_special_bits(image: &mut Image) {
    for (path, line) in &mut image.fs {
        if path.ends_with("su") && line.starts_with("file 0755") {
            *line = line.replacen("file 0755", "file 4755", 1);
        }
        if path.ends_with("sg") && line.starts_with("file 0755") {
            *line = line.replacen("file 0755", "file 2755", 1);
        }
    }
}

fn expect_line(image: &Image, path: &str, line: &str) -> Vec<String> {
    match image.at(path) {
        Some(found) if found == line => Vec::new(),
        found => vec![format!("{path}: {line}, not {found:?}")],
    }
}

/// Every case.
#[expect(clippy::too_many_lines, reason = "a list of cases")]
pub(crate) fn all() -> Vec<Case> {
    vec![
        // Destinations.
        c("workdir_copy_dot", "FROM scratch\nWORKDIR /app\nCOPY a.txt .\n"),
        c("workdir_copy_dot_slash", "FROM scratch\nWORKDIR /app\nCOPY a.txt ./\n"),
        c("workdir_copy_renamed", "FROM scratch\nWORKDIR /app\nCOPY a.txt renamed\n"),
        c(
            "workdir_chained",
            "FROM scratch\nWORKDIR /a\nWORKDIR b\nWORKDIR c\nCOPY a.txt ./\nCOPY b.txt x/\nCOPY exec.sh y\n",
        ),
        c("workdir_creates_folder", "FROM scratch\nWORKDIR /w/x\n"),
        c("workdir_parent_dots", "FROM scratch\nWORKDIR /a/b\nWORKDIR ../c\nCOPY a.txt .\n"),
        c("workdir_from_env", "FROM scratch\nENV D=/data\nWORKDIR $D/sub\nCOPY a.txt .\n"),
        c("copy_onto_existing_folder", "FROM scratch\nCOPY d /d/\nCOPY b.txt /d\n"),
        c("copy_onto_base_folder", "FROM %BASE%\nCOPY a.txt /srv\n"),
        c("copy_to_root", "FROM scratch\nCOPY a.txt /\n"),
        c("copy_new_parents", "FROM scratch\nCOPY a.txt /x/y/z.txt\n"),
        c("copy_overwrites", "FROM scratch\nCOPY a.txt /f\nCOPY b.txt /f\n"),
        c("copy_dir_new_name", "FROM scratch\nCOPY d /dst\n"),
        c("copy_dir_trailing_slashes", "FROM scratch\nCOPY d/ /dst/\n"),
        c("copy_several_into", "FROM scratch\nCOPY a.txt b.txt /dst/\n"),
        Case {
            exception: Some(SETUID),
            fix: Some(keep_special_bits),
            ..c("copy_whole_context", "FROM scratch\nCOPY . /ctx/\n")
        },
        c("copy_dir_into_existing", "FROM scratch\nCOPY a.txt /d/old\nCOPY d /d\n"),
        c("copy_dot_source", "FROM scratch\nWORKDIR /w\nCOPY ./d/./sub ./s\n"),
        // Modes.
        c("modes_files", "FROM scratch\nCOPY m600 m700 m664 m444 exec.sh /m/\n"),
        c("modes_folders", "FROM scratch\nCOPY p700 /p700\nCOPY t1777 /t1777\n"),
        c("modes_folder_contents", "FROM scratch\nCOPY p700/ /x/\n"),
        Case {
            exception: Some(SETUID),
            fix: Some(keep_special_bits),
            ..c("modes_special", "FROM scratch\nCOPY su sg /bin/\n")
        },
        c(
            "modes_base_folders_kept",
            "FROM %BASE%\nCOPY a.txt /tmp/\nCOPY b.txt /home/app/\nCOPY m600 /opt/\n",
        ),
        c("chmod_file", "FROM scratch\nCOPY --chmod=600 a.txt /a\n"),
        c("chmod_folder", "FROM scratch\nCOPY --chmod=750 d /d\n"),
        c("chmod_setuid", "FROM scratch\nCOPY --chmod=4755 a.txt /a\n"),
        c("chmod_several", "FROM scratch\nCOPY --chmod=640 a.txt m700 /x/\n"),
        // Ownership.
        c("chown_numeric", "FROM scratch\nCOPY --chown=1000:1000 a.txt /a\n"),
        c("chown_folder", "FROM scratch\nCOPY --chown=1000:50 d /d\n"),
        c("chown_created_parents", "FROM scratch\nCOPY --chown=1000 a.txt /x/y/a.txt\n"),
        c("chown_uid_only", "FROM scratch\nCOPY --chown=1000 d /d\n"),
        c("chown_names_from_base", "FROM %BASE%\nCOPY --chown=app:staff a.txt /x\n"),
        c("chown_user_name_only", "FROM %BASE%\nCOPY --chown=app a.txt /x\n"),
        c("chown_into_existing_folder", "FROM %BASE%\nCOPY --chown=app d /home/app/\n"),
        c("chown_and_chmod", "FROM scratch\nCOPY --chown=1:2 --chmod=700 d /d\n"),
        c("chown_from_arg", "FROM scratch\nARG U=7\nCOPY --chown=$U:$U a.txt /a\n"),
        c("chown_root", "FROM %BASE%\nCOPY --chown=root:root a.txt /a\n"),
        // Links and folders.
        c("symlink_source_copies_target", "FROM scratch\nCOPY link /l\n"),
        c("symlink_to_folder_source", "FROM scratch\nCOPY dlink /dl\n"),
        c("symlinks_inside_folder", "FROM scratch\nCOPY ld /ld\n"),
        c("empty_folders", "FROM scratch\nCOPY empty /e\nCOPY emptydeep /ed\n"),
        c("empty_folder_source_trailing", "FROM scratch\nCOPY empty/ /e2/\n"),
        c("hardlinks_in_folder", "FROM scratch\nCOPY hl /hl\n"),
        Case {
            exception: Some(SETUID),
            fix: Some(keep_special_bits),
            ..c("hardlinks_with_context", "FROM scratch\nCOPY . /all/\n")
        },
        // Config.
        c("scratch_default_path", "FROM scratch\nCOPY a.txt /\n"),
        c("cmd_then_entrypoint", "FROM scratch\nCMD [\"x\"]\nENTRYPOINT [\"/e\"]\n"),
        c("entrypoint_then_cmd", "FROM scratch\nENTRYPOINT [\"/e\"]\nCMD [\"x\", \"y\"]\n"),
        c("entrypoint_resets_base_cmd", "FROM %BASE%\nENTRYPOINT [\"/e\"]\n"),
        c("base_config_inherited", "FROM %BASE%\n"),
        Case {
            exception: Some(
                "buildah 1.28 moves a variable ENV sets again to the end of Env; BuildKit replaces it in place (`addEnv`)",
            ),
            fix: Some(|image| {
                image.config.insert(
                    "Env".to_owned(),
                    serde_json::json!(["PATH=/opt/bin:/usr/bin:/bin", "BASEVAR=base"]),
                );
            }),
            expect: Some(|image| {
                let env = image.config.get("Env").cloned().unwrap_or_default();
                if env == serde_json::json!(["PATH=/opt/bin:/usr/bin:/bin", "BASEVAR=base"]) {
                    Vec::new()
                } else {
                    vec![format!("Env in place: {env}")]
                }
            }),
            ..c("base_env_extended", "FROM %BASE%\nENV PATH=/opt/bin:$PATH\nUSER app\n")
        },
        c("shell_form_cmd", "FROM scratch\nCMD echo hi\n"),
        c("shell_form_entrypoint", "FROM scratch\nENTRYPOINT exec /e \"$@\"\n"),
        Case {
            exception: Some(
                "buildah 1.28 runs shell-form CMD with /bin/sh -c whatever SHELL says; BuildKit uses SHELL",
            ),
            buildah: Some(
                "FROM scratch\nSHELL [\"/bin/bash\", \"-c\"]\nCMD [\"/bin/bash\", \"-c\", \"echo hi\"]\n",
            ),
            ..c("shell_then_cmd", "FROM scratch\nSHELL [\"/bin/bash\", \"-c\"]\nCMD echo hi\n")
        },
        Case {
            exception: Some(
                "buildah 1.28 runs shell-form ENTRYPOINT with /bin/sh -c whatever SHELL says; BuildKit uses SHELL",
            ),
            buildah: Some(
                "FROM scratch\nSHELL [\"/bin/ash\", \"-eo\", \"pipefail\", \"-c\"]\nENTRYPOINT [\"/bin/ash\", \"-eo\", \"pipefail\", \"-c\", \"run me\"]\n",
            ),
            ..c(
                "shell_then_entrypoint",
                "FROM scratch\nSHELL [\"/bin/ash\", \"-eo\", \"pipefail\", \"-c\"]\nENTRYPOINT run me\n",
            )
        },
        c("env_quotes", "FROM scratch\nARG X=1\nENV E='$X' F=\"$X\" G=$X H='a b' I=\"c d\"\n"),
        c("env_legacy_form", "FROM scratch\nENV A b c  d\n"),
        c("env_escaped_space", "FROM scratch\nENV A=a\\ b\nENV B b\\ c d\n"),
        c("env_positional_parameters_unset", "FROM scratch\nENV G=x$1y H=${1:-d}\nLABEL l=m$1n\n"),
        Case {
            exception: Some(
                "buildah 1.28's lexer reads one digit after `$` and keeps `$@`; BuildKit's `processName` reads a run of digits (`$12`) and the special parameters (`$@`, `$#`, …), all unset",
            ),
            buildah: Some("FROM scratch\nENV I=ab J=pq K=rs\n"),
            ..c("env_special_parameters_unset", "FROM scratch\nENV I=a$12b J=p$@q K=r$#s\n")
        },
        c("byte_order_mark", "\u{feff}FROM scratch\nENV A=1\nCOPY a.txt /\n"),
        c(
            "crlf_line_ends",
            "FROM scratch\r\nENV A=1 \\\r\n  B=2\r\nLABEL x=\"a b\"\r\nCOPY a.txt b.txt /d/\r\n",
        ),
        c("env_chained", "FROM scratch\nENV A=1 B=$A C=${A}x\nENV D=$B\n"),
        c("env_same_line_sees_old", "FROM scratch\nENV A=1\nENV A=2 B=$A\n"),
        c("env_path_extended", "FROM scratch\nENV PATH=/x:$PATH\n"),
        c("maintainer_author", "FROM scratch\nMAINTAINER Jane Doe <jane@example.com>\n"),
        c("labels", "FROM scratch\nLABEL a=b \"c d\"=\"e f\" g='h $X'\nLABEL multi=\"one \\\n  two\"\n"),
        c("labels_from_args", "FROM scratch\nARG V=1.2\nLABEL version=$V v2=${V}-x\n"),
        c("expose", "FROM scratch\nEXPOSE 80 443/tcp 53/udp\nEXPOSE 8080\n"),
        Case {
            exception: Some(
                "buildah 1.28 creates the folder of a JSON-form VOLUME in the image; BuildKit only records it in the config",
            ),
            fix: Some(|image| {
                image.fs.remove("v3");
            }),
            ..c("volume", "FROM scratch\nVOLUME /v1 /v2\nVOLUME [\"/v3\"]\n")
        },
        c("user_ids", "FROM scratch\nUSER 1000:1000\n"),
        c("user_name", "FROM %BASE%\nUSER app\n"),
        c("stopsignal", "FROM scratch\nSTOPSIGNAL SIGTERM\n"),
        c(
            "healthcheck_shell",
            "FROM scratch\nHEALTHCHECK --interval=5s --timeout=3s --start-period=1s --retries=2 CMD curl -f http://x/ || exit 1\n",
        ),
        c("healthcheck_exec", "FROM scratch\nHEALTHCHECK CMD [\"/bin/check\", \"--quick\"]\n"),
        c("healthcheck_none", "FROM %BASE%\nHEALTHCHECK NONE\n"),
        Case {
            expect: Some(|i| expect_line(i, "/onbuild/a.txt", "file 0644 0:0 \"alpha\\n\"")),
            ..c("onbuild_triggers_run", "FROM %ONBUILD%\nENV AFTER=1\n")
        },
        c("onbuild", "FROM scratch\nONBUILD COPY a.txt /x\nONBUILD ENV A=1\n"),
        // The reader.
        c("json_copy_with_spaces", "FROM scratch\nCOPY [\"spaces dir/file one.txt\", \"/dst dir/\"]\n"),
        c("json_copy_several", "FROM scratch\nCOPY [\"a.txt\", \"b.txt\", \"/dst/\"]\n"),
        Case {
            exception: Some(
                "buildah 1.28 treats `\\` as an escape in ENV even under `# escape=`; BuildKit keeps it literal",
            ),
            buildah: Some("FROM scratch\nCOPY a.txt b.txt /x/\nENV P=C:\\\\dir\n"),
            ..c("escape_directive", "# escape=`\nFROM scratch\nCOPY a.txt `\n     b.txt /x/\nENV P=C:\\dir\n")
        },
        c("arg_empty_default", "FROM scratch\nARG E=\nENV V=x${E}y W=${E:-d}\n"),
        c("line_continuations", "FROM scratch\nCOPY a.txt \\\n  b.txt \\\n  /dst/\n"),
        c("comments_in_continuation", "FROM scratch\n# a comment\nCOPY a.txt \\\n# inside\n  /dst\n"),
        c("lowercase_instructions", "from scratch\ncopy a.txt /\nenv A=1\n"),
        c("parser_directive_syntax", "# syntax=docker/dockerfile:1\nFROM scratch\nCOPY a.txt /\n"),
        Case {
            exception: Some("buildah 1.28 has no heredocs; BuildKit writes the text as a file (0644, root)"),
            buildah: Some("FROM scratch\nCOPY h.txt /h.txt\n"),
            extra: &[("h.txt", "hello\nworld\n")],
            expect: Some(|i| expect_line(i, "/h.txt", "file 0644 0:0 \"hello\\nworld\\n\"")),
            ..c("heredoc_copy", "FROM scratch\nCOPY <<EOF /h.txt\nhello\nworld\nEOF\n")
        },
        Case {
            exception: Some(
                "buildah 1.28 has no heredocs; BuildKit writes each text as a file, `--chmod` applied",
            ),
            buildah: Some("FROM scratch\nCOPY --chmod=755 run.sh /bin/run.sh\n"),
            extra: &[("run.sh", "#!/bin/sh\necho $HOME\n")],
            ..c(
                "heredoc_chmod",
                "FROM scratch\nCOPY --chmod=755 <<'EOT' /bin/run.sh\n#!/bin/sh\necho $HOME\nEOT\n",
            )
        },
        // ADD.
        c("add_local_file", "FROM scratch\nADD a.txt /\n"),
        c("add_tar_unpacked", "FROM scratch\nADD archive.tar /x/\n"),
        c("add_tgz_unpacked", "FROM scratch\nADD archive.tar.gz /y\n"),
        c("add_folder", "FROM scratch\nADD d /ad\n"),
        c("add_chown", "FROM scratch\nADD --chown=5:6 a.txt d /add/\n"),
        // Stages.
        c("multistage_copy_from", "FROM scratch AS a\nCOPY d /d\nFROM scratch\nCOPY --from=a /d /e\n"),
        c("multistage_by_index", "FROM scratch\nCOPY a.txt /a\nFROM scratch\nCOPY --from=0 /a /b\n"),
        Case {
            target: Some("first"),
            ..c(
                "target_first_stage",
                "FROM scratch AS first\nCOPY a.txt /\nFROM scratch AS second\nCOPY b.txt /\n",
            )
        },
        c("from_earlier_stage", "FROM scratch AS a\nCOPY a.txt /\nENV A=1\nFROM a\nCOPY b.txt /\n"),
        c("copy_from_image", "FROM scratch\nCOPY --from=%BASE% /etc/passwd /p\n"),
        c("copy_from_base_stage", "FROM %BASE% AS b\nFROM scratch\nCOPY --from=b /etc/group /home /g/\n"),
        c(
            "copy_from_keeps_modes",
            "FROM scratch AS a\nCOPY m600 p700 /s/\nCOPY --chown=3:4 hl /h/\nFROM scratch\nCOPY --from=a /s /t\nCOPY --from=a /h /h\n",
        ),
        Case {
            exception: Some("buildah 1.28 has no `COPY --link`; BuildKit gives the same files"),
            buildah: Some("FROM scratch\nCOPY a.txt /l\nCOPY d /d\n"),
            ..c("copy_link", "FROM scratch\nCOPY --link a.txt /l\nCOPY --link d /d\n")
        },
        // Wildcards.
        c("wildcard_star", "FROM scratch\nCOPY *.go /src/\n"),
        c("wildcard_in_folder", "FROM scratch\nCOPY src/*.go /s/\n"),
        c("wildcard_question", "FROM scratch\nCOPY w?.go /q/\n"),
        c("wildcard_class", "FROM scratch\nCOPY w[12].go /c/\n"),
        c("wildcard_matches_folders", "FROM scratch\nCOPY e* /e/\n"),
        // ARG and substitution.
        c("arg_scoping", "ARG V=1\nFROM scratch\nENV A=$V\nARG V\nENV B=$V\n"),
        Case {
            args: &[("V", "2")],
            ..c("arg_build_arg_overrides", "ARG V=1\nFROM scratch\nARG V\nENV B=$V\n")
        },
        c("arg_defaults_chain", "FROM scratch\nARG A=x\nARG B=${A}y\nENV C=$B\n"),
        c("arg_in_from", "ARG BASE=scratch\nFROM ${BASE}\nCOPY a.txt /\n"),
        Case { args: &[("U", "1")], ..c("arg_undeclared_is_ignored", "FROM scratch\nENV X=${U:-unset}\n") },
        c("arg_not_in_env", "FROM scratch\nARG A=1\nENV B=$A\n"),
        c(
            "substitution_forms",
            "FROM scratch\nENV S=set E=\nENV A=${S:-d} B=${U:-d} C=${S:+alt} D=${U:+alt} F=${E:-empty} G=\\$S\n",
        ),
        c("env_in_copy", "FROM scratch\nENV D=/data\nCOPY a.txt $D/\n"),
        // .dockerignore and names.
        Case { ctx: Ctx::Ignore, ..c("dockerignore", "FROM scratch\nCOPY . /c/\n") },
        Case { ctx: Ctx::Ignore, ..c("dockerignore_folder_source", "FROM scratch\nCOPY sub /s\n") },
        c("copy_through_symlinked_folder", "FROM %BASE%\nCOPY a.txt /var/run/\nCOPY b.txt /var/run/sub/\n"),
        c("workdir_owned_by_user", "FROM %BASE%\nUSER app\nWORKDIR /data/x\n"),
        c("chown_group_name", "FROM %BASE%\nCOPY --chown=www:app a.txt /w\n"),
        c("copy_from_image_chown_name", "FROM %BASE%\nCOPY --from=%BASE% --chown=app /etc/group /g\n"),
        c("add_archive_chown", "FROM scratch\nADD --chown=9:9 archive.tar /z/\n"),
        Case {
            exception: Some(
                "buildah 1.28 keeps a port range as one key; BuildKit exposes each port of it (`parsePortRange`)",
            ),
            fix: Some(|image| {
                image.config.insert(
                    "ExposedPorts".to_owned(),
                    serde_json::json!({"8000/udp": {}, "8001/udp": {}, "8002/udp": {}}),
                );
            }),
            ..c("expose_range", "FROM scratch\nEXPOSE 8000-8002/udp\n")
        },
        c("label_escaped_quotes", "FROM scratch\nLABEL desc=\"say \\\"hi\\\"\" path=C:\\\\x\n"),
        c("workdir_relative_first", "FROM scratch\nWORKDIR rel\nCOPY a.txt .\n"),
        c("copy_dot_to_workdir_root", "FROM scratch\nWORKDIR /\nCOPY a.txt .\n"),
        c("env_dollar_dollar", "FROM scratch\nENV A=x\nENV B=\"$A-${A}-\\$A\" C='${A}'\n"),
        c("copy_wildcard_nothing_and_file", "FROM scratch\nCOPY a.txt *.nothing /w/\n"),
        c(
            "from_platform_flag",
            "FROM --platform=$BUILDPLATFORM scratch AS s\nCOPY a.txt /\nFROM scratch\nCOPY --from=s /a.txt /b\n",
        ),
        c("user_does_not_own_copies", "FROM %BASE%\nUSER app\nCOPY a.txt /x\n"),
        c("workdir_existing_base_folder", "FROM %BASE%\nWORKDIR /tmp\nCOPY a.txt .\n"),
        c("env_from_base_env", "FROM %BASE%\nENV X=$BASEVAR-x Y=${NOPE:-$BASEVAR}\n"),
        c("from_as_lowercase", "FROM scratch as lower\nCOPY a.txt /\nFROM lower\n"),
        c("arg_quoted_value", "FROM scratch\nARG Q=\"a b\" R='c $Q'\nENV Q=$Q R=$R\n"),
        c("env_continued", "FROM scratch\nENV A=1 \\\n    B=2 \\\n    C=3\n"),
        c("big_file", "FROM scratch\nCOPY big.bin /b/\n"),
        c("chown_symlinks_in_folder", "FROM scratch\nCOPY --chown=5:5 ld /ld\n"),
        c("unicode_names", "FROM scratch\nCOPY ünï /u/\nCOPY 日本.txt /\n"),
        // A base image's hardlinks name files of their own layer: a later layer that upgrades
        // or removes the file leaves the other names the old bytes (issue 24).
        Case {
            expect: Some(|i| {
                let mut problems = expect_line(i, "/py3", "file 0755 0:0 \"python 3.11.2\\n\"");
                problems.extend(expect_line(i, "/bin2/python3.11", "file 0755 0:0 \"python 3.11.9\\n\""));
                problems.extend(expect_line(
                    i,
                    "/bin2/python3",
                    "file 0755 0:0 \"python 3.11.2\\n\" links=bin2/python,bin2/python3",
                ));
                problems
            }),
            ..c(
                "hardlinked_base_upgraded",
                "FROM scratch\nCOPY --from=%LINKED% /usr/bin/python3 /py3\nCOPY --from=%LINKED% /usr/bin /bin2\n",
            )
        },
        Case {
            expect: Some(|i| expect_line(i, "/py3", "file 0755 0:0 \"python 3.11.2\\n\"")),
            ..c(
                "hardlinked_base_whited_out",
                "FROM scratch\nCOPY --from=%UNLINKED% /usr/bin/python3 /py3\nCOPY --from=%UNLINKED% /usr/bin /bin2\n",
            )
        },
        c("hardlinked_base_stage", "FROM %LINKED% AS b\nFROM scratch\nCOPY --from=b /usr /u\n"),
        c("hardlinked_base_kept", "FROM %UNLINKED%\nCOPY a.txt /usr/bin/\n"),
        // ADD: an archive is what decompresses to a tar (issue 24); anything else is copied.
        c("add_gzip_not_a_tar", "FROM scratch\nADD note.txt.gz /\n"),
        c("add_xz_not_a_tar", "FROM scratch\nADD note.txt.xz /n/\n"),
        c("add_rootfs_tar_xz", "FROM scratch\nADD rootfs.tar.xz /\n"),
        c("add_tar_bz2", "FROM scratch\nADD rootfs.tar.bz2 /b/\n"),
        c("add_tar_zst", "FROM scratch\nADD rootfs.tar.zst /z/\n"),
        c("add_odd_names", "FROM scratch\nADD odd.tar /o/\nADD odd.tar /\n"),
        // An archive's entries go through the image's symlinked folders (`/var/run` → `../run`),
        // unless the archive holds the folder itself.
        c("add_through_image_symlink", "FROM %BASE%\nADD varrun.tar /\n"),
        c("add_folder_over_image_symlink", "FROM %BASE%\nADD varrundir.tar /\n"),
        // Issue 24: COPY semantics.
        Case {
            ctx: Ctx::OwnIgnore,
            exception: Some(
                "buildah 1.28 reads only the context's .dockerignore; BuildKit (and buildx) take the Dockerfile's own `Dockerfile.dockerignore` instead of it, never both",
            ),
            fix: Some(|image| {
                image.fs.retain(|path, _| !path.ends_with(".log"));
                for name in ["notes.md", "sub/c.md"] {
                    image.fs.insert(format!("c/{name}"), format!("file 0644 0:0 {name:?}"));
                }
            }),
            ..c("dockerignore_of_the_dockerfile", "FROM scratch\nCOPY . /c/\n")
        },
        Case { ctx: Ctx::Patterns, ..c("dockerignore_docker_patterns", "FROM scratch\nCOPY . /c/\n") },
        c("chown_uid_only_on_base", "FROM %BASE%\nCOPY --chown=1000 a.txt d /x/\n"),
        c("workdir_trailing_slash", "FROM scratch\nWORKDIR /srv/www/\nCOPY a.txt ./\n"),
        c("workdir_absolute_as_written", "FROM scratch\nWORKDIR /a//b/./c/\nCOPY a.txt .\n"),
        c("copy_hardlinked_pair_as_two_sources", "FROM scratch\nCOPY hl/h1 hl/h2 /p/\n"),
        Case {
            exception: Some(
                "buildah 1.28 refuses symbolic `--chmod` (Dockerfile 1.14); BuildKit changes each copied entry's own mode as chmod(1) does (no umask), `X` for folders",
            ),
            buildah: Some(
                "FROM scratch\nCOPY --chmod=744 m664 /x/\nCOPY --chmod=700 d /dx\nCOPY --chmod=755 m600 /y/m600\n",
            ),
            fix: Some(|image| {
                for (path, line) in &mut image.fs {
                    if path.starts_with("dx/") && line.starts_with("file 0700") {
                        *line = line.replacen("file 0700", "file 0600", 1);
                    }
                }
            }),
            ..c(
                "chmod_symbolic",
                "FROM scratch\nCOPY --chmod=u+x,go-w m664 /x/\nCOPY --chmod=go-rwx,u+X d /dx\nCOPY --chmod=+x,go+r m600 /y/m600\n",
            )
        },
        // Issue 24: bases like real distributions (merged /usr, whiteouts, USER in the config).
        Case {
            expect: Some(|image| {
                let mut problems = Vec::new();
                for gone in ["/etc/old.conf", "/var/cache/apt/pkgcache.bin", "/var/cache/apt/archives"] {
                    if image.at(gone).is_some() {
                        problems.push(format!("{gone} is whited out"));
                    }
                }
                problems.extend(expect_line(
                    image,
                    "/var/cache/apt/fresh.bin",
                    "file 0644 0:0 \"fresh cache\\n\"",
                ));
                problems.extend(expect_line(image, "/bin", "symlink 0777 0:0 -> usr/bin"));
                let labels = image.config.get("Labels").cloned().unwrap_or_default();
                if labels["built.on.distro"] != "yes" {
                    problems.push(format!("the ONBUILD trigger ran: {labels}"));
                }
                if image.config.get("User") != Some(&serde_json::json!("app")) {
                    problems.push("USER app inherited".to_owned());
                }
                problems
            }),
            ..c("distro_inherited", "FROM %DISTRO%\n")
        },
        c(
            "distro_copy_through_merged_usr",
            "FROM %DISTRO%\nCOPY exec.sh /bin/\nCOPY a.txt /usr/local/bin/\nCOPY b.txt /lib/x/\nCOPY d /sbin/d/\n",
        ),
        Case {
            exception: Some(
                "buildah 1.28 follows the base's `/bin -> usr/bin` and copies into it; BuildKit refuses a folder copied onto a link (`cannot copy to non-directory`), and so does hephy rather than replace the link",
            ),
            extra: &[("rootfs/bin/hello", "hello\n"), ("rootfs/etc/app.conf", "conf\n")],
            refused: Some("Dockerfile, line 3: cannot copy to non-directory `/bin`"),
            ..c("distro_copy_rootfs_over_links_refused", "FROM %DISTRO%\nUSER root\nCOPY rootfs/ /\n")
        },
        Case {
            exception: Some(
                "buildah 1.28 follows `/usr/local/bin -> /opt/bin`; BuildKit refuses a folder copied onto a link",
            ),
            extra: &[("overlay/usr/local/bin/tool2", "tool2\n")],
            refused: Some("cannot copy to non-directory `/usr/local/bin`"),
            ..c("distro_copy_onto_usr_local_bin_refused", "FROM %DISTRO%\nCOPY overlay/usr /usr\n")
        },
        c("distro_chown_uid_only", "FROM %DISTRO%\nCOPY --chown=1001 a.txt d /x/\n"),
        c("distro_chown_name", "FROM %DISTRO%\nCOPY --chown=app a.txt /x\nCOPY --chown=app:staff b.txt /y\n"),
        c("distro_workdir_as_user", "FROM %DISTRO%\nWORKDIR /srv/www/\nCOPY a.txt ./\n"),
        c(
            "distro_whiteouts_copied_from",
            "FROM scratch\nCOPY --from=%DISTRO% /etc /e\nCOPY --from=%DISTRO% /var/cache /c\n",
        ),
        c("distro_hardlinks_copied_from", "FROM %DISTRO% AS os\nFROM scratch\nCOPY --from=os /usr/bin /b\n"),
        c(
            "distro_healthcheck_replaced",
            "FROM %DISTRO%\nHEALTHCHECK --interval=5s CMD [\"/bin/check\"]\nVOLUME /cache\nUSER root\n",
        ),
        // Real-project shapes.
        c(
            "shape_distroless_app",
            "FROM %DISTRO% AS os\nFROM scratch\nCOPY --from=os /etc/passwd /etc/group /etc/\nCOPY --from=os /usr/lib/libc.so.6 /lib/\nCOPY --chown=65532:65532 --chmod=755 exec.sh /app/server\nUSER 65532:65532\nWORKDIR /app\nENTRYPOINT [\"/app/server\"]\n",
        ),
        Case {
            extra: &[
                ("site/index.html", "<!doctype html><title>hi</title>\n"),
                ("site/css/style.css", "body { margin: 0 }\n"),
                ("site/img/.keep", ""),
            ],
            ..c(
                "shape_static_site",
                "FROM %DISTRO%\nUSER root\nCOPY --chown=www-data:www-data site/ /srv/www/\nEXPOSE 8080\nUSER www-data\nCMD [\"/usr/bin/tool\", \"serve\", \"/srv/www\"]\n",
            )
        },
        c(
            "shape_prebuilt_artifacts",
            "FROM scratch AS artifacts\nCOPY d /dist/\nCOPY exec.sh /dist/bin/app\nFROM %DISTRO%\nCOPY --from=artifacts --chown=app:app /dist/ /opt/app/\nENTRYPOINT [\"/opt/app/bin/app\"]\n",
        ),
        c("dockerfile_crlf", "FROM %DISTRO%\r\nCOPY a.txt /srv/\r\nENV A=1 \\\r\n    B=2\r\nLABEL x=y\r\n"),
        c("dockerfile_bom", "\u{feff}FROM %DISTRO%\nCOPY a.txt /srv/\n"),
    ]
}

fn file(dir: &Path, path: &str, text: &str, mode: u32) {
    let full = dir.join(path);
    std::fs::create_dir_all(full.parent().unwrap()).unwrap();
    std::fs::write(&full, text).unwrap();
    std::fs::set_permissions(&full, std::fs::Permissions::from_mode(mode)).unwrap();
}

fn folder(dir: &Path, path: &str, mode: u32) {
    let full = dir.join(path);
    std::fs::create_dir_all(&full).unwrap();
    std::fs::set_permissions(&full, std::fs::Permissions::from_mode(mode)).unwrap();
}

fn archive(dir: &Path, path: &str, gzip: bool) {
    let out: Box<dyn std::io::Write> = {
        let f = std::fs::File::create(dir.join(path)).unwrap();
        if gzip {
            Box::new(flate2::write::GzEncoder::new(f, flate2::Compression::default()))
        } else {
            Box::new(f)
        }
    };
    let mut tar = tar::Builder::new(out);
    let mut put = |path: &str, kind: tar::EntryType, mode: u32, uid: u64, data: &str| {
        let mut header = tar::Header::new_gnu();
        header.set_entry_type(kind);
        header.set_mode(mode);
        header.set_uid(uid);
        header.set_gid(uid);
        header.set_mtime(0);
        header.set_size(data.len() as u64);
        if kind == tar::EntryType::Symlink {
            header.set_size(0);
            tar.append_link(&mut header, path, data).unwrap();
        } else {
            tar.append_data(&mut header, path, data.as_bytes()).unwrap();
        }
    };
    put("arc/", tar::EntryType::Directory, 0o750, 0, "");
    put("arc/one.txt", tar::EntryType::Regular, 0o640, 1000, "one\n");
    put("arc/link", tar::EntryType::Symlink, 0o777, 0, "one.txt");
    put("top.txt", tar::EntryType::Regular, 0o600, 0, "top\n");
    tar.into_inner().unwrap().flush().unwrap();
}

/// A distribution's root file system as its build writes it (`./` names, a hardlink, a symlink
/// to an absolute path, `/tmp` 1777), compressed by `compress`.
fn rootfs(dir: &Path, name: &str, compress: fn(&[u8]) -> Vec<u8>) {
    let mut tar = tar::Builder::new(Vec::new());
    let entries: [(&str, tar::EntryType, u32, &str); 11] = [
        ("./", tar::EntryType::Directory, 0o755, ""),
        ("./bin/", tar::EntryType::Directory, 0o755, ""),
        ("./bin/sh", tar::EntryType::Symlink, 0o777, "/usr/bin/dash"),
        ("./etc/", tar::EntryType::Directory, 0o755, ""),
        ("./etc/os-release", tar::EntryType::Regular, 0o644, "ID=hephy\n"),
        ("./tmp/", tar::EntryType::Directory, 0o1777, ""),
        ("./usr/", tar::EntryType::Directory, 0o755, ""),
        ("./usr/bin/", tar::EntryType::Directory, 0o755, ""),
        ("./usr/bin/dash", tar::EntryType::Regular, 0o755, "#!dash\n"),
        ("./usr/bin/sh.distrib", tar::EntryType::Link, 0o755, "./usr/bin/dash"),
        ("./usr/bin/perl", tar::EntryType::Regular, 0o755, "#!perl\n"),
    ];
    for (path, kind, mode, data) in entries {
        let mut header = tar::Header::new_gnu();
        header.set_entry_type(kind);
        header.set_mode(mode);
        header.set_uid(0);
        header.set_gid(0);
        header.set_mtime(0);
        if matches!(kind, tar::EntryType::Link | tar::EntryType::Symlink) {
            header.set_size(0);
            tar.append_link(&mut header, path, data).unwrap();
        } else {
            header.set_size(data.len() as u64);
            tar.append_data(&mut header, path, data.as_bytes()).unwrap();
        }
    }
    std::fs::write(dir.join(name), compress(&tar.into_inner().unwrap())).unwrap();
}

/// An archive with names as tools write them and Docker reads them: absolute, `./`, `a/../b`,
/// hardlinks by absolute name and in a chain, and a file replaced after a hardlink named it.
fn odd_archive() -> Vec<u8> {
    use tar::EntryType::{Link, Regular};
    crate::common::layers::tar_of(&[
        ("/abs.txt", Regular, "absolute\n"),
        ("./dot/./x.txt", Regular, "dot\n"),
        ("a/../b.txt", Regular, "b\n"),
        ("c1", Link, "/abs.txt"),
        ("c2", Link, "./c1"),
        ("r", Regular, "r one\n"),
        ("r-link", Link, "r"),
        ("r", Regular, "r two\n"),
    ])
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(bytes).unwrap();
    e.finish().unwrap()
}

fn xz(bytes: &[u8]) -> Vec<u8> {
    let mut e = liblzma::write::XzEncoder::new(Vec::new(), 6);
    e.write_all(bytes).unwrap();
    e.finish().unwrap()
}

fn bzip2(bytes: &[u8]) -> Vec<u8> {
    let mut e = bzip2::write::BzEncoder::new(Vec::new(), bzip2::Compression::default());
    e.write_all(bytes).unwrap();
    e.finish().unwrap()
}

fn zstd(bytes: &[u8]) -> Vec<u8> {
    zstd::encode_all(bytes, 3).unwrap()
}

/// Writes the build context `ctx` into `dir`.
pub(crate) fn write_context(dir: &Path, ctx: Ctx) {
    std::fs::create_dir_all(dir).unwrap();
    match ctx {
        Ctx::Std => {
            file(dir, "a.txt", "alpha\n", 0o644);
            file(dir, "b.txt", "beta\n", 0o644);
            file(dir, "exec.sh", "#!/bin/sh\necho exec\n", 0o755);
            for (name, mode) in [("m600", 0o600), ("m700", 0o700), ("m664", 0o664), ("m444", 0o444)] {
                file(dir, name, name, mode);
            }
            file(dir, "su", "setuid\n", 0o4755);
            file(dir, "sg", "setgid\n", 0o2755);
            file(dir, "d/x.txt", "x\n", 0o644);
            file(dir, "d/sub/y.txt", "y\n", 0o644);
            folder(dir, "d/sub", 0o755);
            file(dir, "p700/f", "f\n", 0o644);
            folder(dir, "p700", 0o700);
            file(dir, "t1777/f", "t\n", 0o644);
            folder(dir, "t1777", 0o1777);
            folder(dir, "empty", 0o755);
            folder(dir, "emptydeep/e1/e2", 0o755);
            std::os::unix::fs::symlink("a.txt", dir.join("link")).unwrap();
            std::os::unix::fs::symlink("d", dir.join("dlink")).unwrap();
            folder(dir, "ld", 0o755);
            std::os::unix::fs::symlink("../a.txt", dir.join("ld/rel")).unwrap();
            std::os::unix::fs::symlink("/etc/passwd", dir.join("ld/abs")).unwrap();
            std::os::unix::fs::symlink("nowhere", dir.join("ld/dangling")).unwrap();
            file(dir, "ld/plain", "plain\n", 0o644);
            file(dir, "hl/h1", "hard\n", 0o640);
            std::fs::hard_link(dir.join("hl/h1"), dir.join("hl/h2")).unwrap();
            file(dir, "spaces dir/file one.txt", "spaces\n", 0o644);
            file(dir, "ünï/ç€.txt", "unicode\n", 0o644);
            file(dir, "日本.txt", "nihon\n", 0o644);
            for name in ["w1.go", "w2.go", "w3.go", "w1.txt", "src/a.go", "src/b.go", "src/c.txt"] {
                file(dir, name, name, 0o644);
            }
            let big: Vec<u8> = (0..200_000u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
            std::fs::write(dir.join("big.bin"), big).unwrap();
            archive(dir, "archive.tar", false);
            archive(dir, "archive.tar.gz", true);
            rootfs(dir, "rootfs.tar.xz", xz);
            rootfs(dir, "rootfs.tar.bz2", bzip2);
            rootfs(dir, "rootfs.tar.zst", zstd);
            std::fs::write(dir.join("odd.tar"), odd_archive()).unwrap();
            std::fs::write(
                dir.join("varrun.tar"),
                crate::common::layers::tar_of(&[
                    ("var/run/pid", tar::EntryType::Regular, "1\n"),
                    ("var/run/h", tar::EntryType::Link, "var/run/pid"),
                ]),
            )
            .unwrap();
            std::fs::write(
                dir.join("varrundir.tar"),
                crate::common::layers::tar_of(&[
                    ("var/run/", tar::EntryType::Directory, ""),
                    ("var/run/pid", tar::EntryType::Regular, "1\n"),
                ]),
            )
            .unwrap();
            std::fs::write(dir.join("note.txt.gz"), gzip(b"a note, compressed\n")).unwrap();
            std::fs::write(dir.join("note.txt.xz"), xz(b"another note\n")).unwrap();
        }
        Ctx::OwnIgnore => {
            for name in ["keep.txt", "notes.md", "a.log", "sub/b.log", "sub/c.md"] {
                file(dir, name, name, 0o644);
            }
            file(dir, ".dockerignore", "*.md\n**/*.md\n", 0o644);
            file(dir, "Dockerfile.dockerignore", "# the Dockerfile's own\n**/*.log\n", 0o644);
        }
        Ctx::Patterns => {
            for name in
                ["x.log", "y.tmp", "z.{log,tmp}", "b.bak", "abak.bak", "!x.bak", "c.txt", "k.txt", "d.{a}"]
            {
                file(dir, name, name, 0o644);
            }
            file(dir, ".dockerignore", "*.{log,tmp}\n[!a]*.bak\n*.{a}\n[^c]*.txt\n", 0o644);
        }
        Ctx::Ignore => {
            for name in [
                "keep.txt",
                "a.log",
                "sub/b.log",
                "sub/keep.log",
                "sub/c.txt",
                "secret/s.txt",
                "deep/x/y/z.md",
                "deep/x/y/z.txt",
            ] {
                file(dir, name, name, 0o644);
            }
            file(
                dir,
                ".dockerignore",
                "**/*.log\n!sub/keep.log\nsecret\ndeep/**/*.md\nDockerfile\nlogs\n!logs/keep\n",
                0o644,
            );
        }
    }
}
