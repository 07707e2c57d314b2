//! The reader against the Dockerfile reference and BuildKit's parser.

use super::*;

fn vars(name: &str) -> Option<String> {
    match name {
        "A" => Some("x".to_owned()),
        "E" => Some(String::new()),
        _ => None,
    }
}

#[test]
fn reads_directives_continuations_heredocs_and_json() {
    let d = parse("# escape=`\nFROM scratch\nCOPY a `\n# skipped\n  b /x/\nCOPY <<EOF <<-'END' /d/\nhello $X\nEOF\n\tbye\n\tEND\nCOPY [\"a b\", \"/c d/\"]\n")
        .expect("reads");
    assert_eq!(d.escape, '`');
    let i = &d.instructions;
    assert_eq!(i[1].args, "a   b /x/");
    assert_eq!(i[1].line, 3);
    assert_eq!(i[2].heredocs.len(), 2);
    assert_eq!(i[2].heredocs[0], Heredoc { name: "EOF".into(), body: "hello $X\n".into(), expand: true });
    assert_eq!(i[2].heredocs[1].body, "bye\n");
    assert!(!i[2].heredocs[1].expand);
    let Command::Copy(copy) = &i[3].command else { panic!("a COPY: {:?}", i[3].command) };
    assert!(copy.json);
    assert_eq!(copy.paths.iter().map(|p| p.text.as_str()).collect::<Vec<_>>(), ["a b", "/c d/"]);
    assert!(parse("FROM scratch\nCOPY <<EOF /x\nno end\n").is_err());
}

#[test]
fn a_byte_order_mark_is_discarded_and_crlf_reads_as_lf() {
    let lf = parse("FROM scratch\nENV A=1 \\\n  B=2\nCOPY a /b\n").expect("LF");
    let bom = parse("\u{feff}FROM scratch\nENV A=1 \\\n  B=2\nCOPY a /b\n").expect("a BOM");
    let crlf = parse("FROM scratch\r\nENV A=1 \\\r\n  B=2\r\nCOPY a /b\r\n").expect("CRLF");
    let strip = |d: &Dockerfile| {
        d.instructions
            .iter()
            .map(|i| (i.command.clone(), i.args.clone(), i.line, i.column))
            .collect::<Vec<_>>()
    };
    let plain = strip(&lf);
    assert_eq!(plain[1].1, "A=1   B=2");
    let mut shifted = strip(&bom);
    for (command, ..) in &mut shifted {
        if let Command::From { image, .. } = command {
            image.span = image.span.start - 3..image.span.end - 3;
        }
    }
    assert_eq!(
        shifted.iter().map(|s| (&s.1, s.2, s.3)).collect::<Vec<_>>(),
        plain.iter().map(|s| (&s.1, s.2, s.3)).collect::<Vec<_>>()
    );
    assert_eq!(bom.instructions[0].span, 3..15);
    assert_eq!(
        strip(&crlf).iter().map(|s| (&s.1, s.2)).collect::<Vec<_>>(),
        plain.iter().map(|s| (&s.1, s.2)).collect::<Vec<_>>()
    );
    let Command::Copy(copy) = &crlf.instructions[2].command else { panic!("a COPY") };
    assert_eq!(copy.dest().map(|d| d.text.as_str()), Some("/b"));
}

#[test]
fn instructions_are_typed_with_spans() {
    let text = "# syntax=docker/dockerfile:1\nARG BASE=x \\\n    OTHER\nFROM --platform=$BUILDPLATFORM xx AS cross\nFROM ${BASE}\nCOPY --from=cross --chown=1 /a /b\nRUN --mount=type=cache,target=/c make\n  ONBUILD run echo\n";
    let d = parse(text).expect("reads");
    assert_eq!(d.syntax.as_ref().map(|s| &text[s.span.clone()]), Some("docker/dockerfile:1"));
    assert!(is_standard_syntax("docker/dockerfile:1"));
    assert!(is_standard_syntax("docker.io/docker/dockerfile:1.7-labs@sha256:00"));
    assert!(!is_standard_syntax("example.com/my/frontend:1"));
    let Command::Arg(args) = &d.instructions[0].command else { panic!("an ARG") };
    assert_eq!(&text[args[1].name.span.clone()], "OTHER");
    assert_eq!(args[0].default.as_ref().map(|w| &text[w.span.clone()]), Some("x"));
    let Command::From { image, platform, alias } = &d.instructions[1].command else { panic!("a FROM") };
    assert_eq!(&text[image.span.clone()], "xx");
    assert_eq!(platform.as_ref().map(|p| p.text.as_str()), Some("$BUILDPLATFORM"));
    assert_eq!(alias.as_ref().map(|a| a.text.as_str()), Some("cross"));
    let Command::Copy(copy) = &d.instructions[3].command else { panic!("a COPY") };
    assert_eq!(copy.from.as_ref().map(|f| &text[f.span.clone()]), Some("cross"));
    assert_eq!(copy.chown.as_ref().map(|f| f.text.as_str()), Some("1"));
    assert!(d.instructions[4].flag("mount").is_some());
    assert!(d.instructions[4].runs());
    let onbuild = &d.instructions[5];
    assert_eq!((onbuild.line, onbuild.column), (8, 3));
    assert!(onbuild.runs());
}

#[test]
fn errors_keep_their_line_and_column() {
    let e = parse("FROM scratch\n\n  FOO bar\n").expect_err("not an instruction");
    assert_eq!(e.to_string(), "`FOO` is not a Dockerfile instruction");
    assert_eq!((e.line, e.column, e.span.clone()), (3, 3, 16..19));
    let e = parse("FROM scratch\nCOPY --nope=1 a b\n").expect_err("an unknown flag");
    assert_eq!(e.to_string(), "`COPY --nope` is not a flag of `COPY`");
    assert_eq!((e.line, e.column), (2, 6));
    let e = parse("\u{feff}FROM a b\n").expect_err("a bad FROM");
    assert_eq!((e.line, e.column), (1, 1));
    assert!(parse("FROM scratch\nADD --from=x a b\n").is_err(), "`ADD` has no `--from`");
    assert!(parse("FROM scratch\nONBUILD FROM x\n").is_err());
    assert!(parse("FROM scratch\nCOPY a\n").is_err());
    assert!(parse("FROM scratch\nSHELL sh\n").is_err());
}

#[test]
fn the_number_of_instructions_is_bounded() {
    let ok = "LABEL a=b\n".repeat(MAX_INSTRUCTIONS);
    assert_eq!(parse(&ok).expect("at the limit").instructions.len(), MAX_INSTRUCTIONS);
    let e = parse(&format!("{ok}LABEL c=d\n")).expect_err("over it");
    assert_eq!(e.kind, ParseErrorKind::TooMany(MAX_INSTRUCTIONS));
    assert_eq!(e.line, MAX_INSTRUCTIONS + 1);
}

#[test]
fn words_follow_the_shell_rules() {
    let w = |t: &str| word(t, '\\', &vars).expect("a word");
    assert_eq!(w("$A/${A}/${B:-d}/${E:-d}/${A:+y}/${B:+y}/\\$A"), "x/x/d/d/y//$A");
    assert_eq!(w("'$A' \"$A\" a\\ b"), "$A x a b");
    assert_eq!(w("${E-d}${B-d}${E+s}${B+s}"), "ds");
    assert_eq!(word("${B:?unset}", '\\', &vars).expect_err("required").to_string(), "`B`: unset");
    assert_eq!(
        word("${E:?}", '\\', &vars).expect_err("required").to_string(),
        "`E`: is not allowed to be empty"
    );
    assert_eq!(split_words("a=b \"c d\"='e f' g=h\\ i", '\\'), ["a=b", "\"c d\"='e f'", "g=h\\ i"]);
}

#[test]
fn positional_and_special_parameters_expand_to_nothing() {
    // BuildKit's `processName`: `$1` is a (never set) name, as are `$@`, `$#`, `$$`…
    let w = |t: &str| word(t, '\\', &vars).expect("a word");
    assert_eq!(w("x$1y"), "xy");
    assert_eq!(w("x$12y"), "xy");
    assert_eq!(w("a$@b$*c$#d$?e$$f$!g$-h"), "abcdefgh");
    assert_eq!(w("${1}z${1:-d}"), "zd");
    assert_eq!(w("$ $"), "$ $");
    assert_eq!(w("\"$A$1\""), "x");
    assert_eq!(expand("a$1b\n", '\\', &vars).expect("a body"), "ab\n");
}

#[test]
fn env_and_label_pairs() {
    let p = |t: &str| pairs(t, '\\', &vars, "ENV");
    assert_eq!(p("G=x$1y").expect("pairs"), [("G".to_owned(), "xy".to_owned())]);
    assert_eq!(p("A b c").expect("legacy"), [("A".to_owned(), "b c".to_owned())]);
    assert!(matches!(p("A=1 B"), Err(PairError::NoEquals { .. })));
    assert!(matches!(p("A"), Err(PairError::NoValue { .. })));
}

#[test]
fn parse_all_reports_every_bad_instruction() {
    let (d, errors) =
        parse_all("FROM scratch\nFROBNICATE now\nCOPY a /a\nSHELL sh\nHEALTHCHECK --every=5s CMD true\n");
    assert_eq!(d.instructions.iter().map(Instruction::keyword).collect::<Vec<_>>(), ["FROM", "COPY"]);
    assert_eq!(errors.iter().map(|e| (e.line, e.column)).collect::<Vec<_>>(), [(2, 1), (4, 1), (5, 13)]);
    let bad = "FOO\n".repeat(MAX_INSTRUCTIONS + 5);
    let (_, errors) = parse_all(&bad);
    assert_eq!(errors.len(), MAX_INSTRUCTIONS + 1, "bounded, the bound said last");
    assert_eq!(errors.last().map(|e| &e.kind), Some(&ParseErrorKind::TooMany(MAX_INSTRUCTIONS)));
}

mod arbitrary {
    use proptest::prelude::*;

    use super::*;

    fn piece() -> impl Strategy<Value = String> {
        prop_oneof![
            Just("FROM ".to_owned()),
            Just("COPY ".to_owned()),
            Just("ONBUILD ".to_owned()),
            Just("ENV ".to_owned()),
            Just("ARG ".to_owned()),
            Just("--from=".to_owned()),
            Just("--link ".to_owned()),
            Just(" AS ".to_owned()),
            Just("<<EOF".to_owned()),
            Just("EOF".to_owned()),
            Just("\\".to_owned()),
            Just("\n".to_owned()),
            Just("\r\n".to_owned()),
            Just("# escape=`\n".to_owned()),
            Just("\u{feff}".to_owned()),
            Just("$".to_owned()),
            Just("${".to_owned()),
            Just("}".to_owned()),
            Just("\"".to_owned()),
            Just("'".to_owned()),
            Just("[\"a\", \"b\"]".to_owned()),
            "[a-zé=:/ .]{0,6}",
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(500))]

        #[test]
        fn any_text_reads_or_fails_in_place(pieces in prop::collection::vec(piece(), 0..40)) {
            let text: String = pieces.concat();
            let (all, errors) = parse_all(&text);
            for e in &errors {
                prop_assert!(e.span.end <= text.len() && e.span.start <= e.span.end, "{e:?}");
                prop_assert!(e.line >= 1 && e.column >= 1);
            }
            for i in &all.instructions {
                prop_assert!(text.get(i.span.clone()).is_some(), "{i:?}");
                let _ = word(&i.args, all.escape, &|_| None);
                let _ = pairs(&i.args, all.escape, &|_| None, "ENV");
            }
            match parse(&text) {
                Ok(d) => prop_assert!(errors.is_empty() && d == all),
                Err(e) => prop_assert_eq!(Some(&e), errors.first()),
            }
        }
    }
}
