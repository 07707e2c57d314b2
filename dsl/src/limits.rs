//! The size and depth limits of the graph language, in one table: every recursion has a depth
//! bound and every expansion a size bound, checked before anything is allocated for what
//! exceeds it and reported as a diagnostic at the construct that exceeds it. SPEC's "Limits"
//! section lists the same numbers; the importers use them too.

/// The largest graph file hephy reads (64 MiB).
pub const MAX_FILE_BYTES: u64 = 64 << 20;

/// How deep a graph file nests: KDL blocks (`{ }`) and YAML values.
pub const MAX_NESTING: usize = 64;

/// The values all of a YAML file's aliases may expand to, together.
pub const MAX_ALIAS_VALUES: usize = 100_000;

/// How deep templates may inherit: an image's chain of `inherits`, itself not counted.
pub const MAX_TEMPLATE_DEPTH: usize = 64;

/// How many templates one `inherits` may list.
pub const MAX_INHERITS: usize = 64;

/// The images and tasks all of a graph's matrices may make, together (the products of their
/// value lists, summed).
pub const MAX_MATRIX_COPIES: usize = 100_000;

/// The strings (names, settings, list items, `NAME=VALUE` pairs as two) all templates, images
/// and tasks hold after templates are merged in and matrices multiplied out, together: a
/// template of many settings inherited by many images is copied into each.
pub const MAX_EXPANDED_STRINGS: usize = 10_000_000;

/// The longest a string may grow to when `${…}` is filled in (1 MiB).
pub const MAX_EXPANDED_STRING: usize = 1 << 20;

/// The text all of a graph's `${…}` may fill in, together (256 MiB): a variable used in many
/// strings of many matrix copies.
pub const MAX_EXPANDED_TEXT: usize = 256 << 20;

/// The problems of one load after which "did you mean" is no longer looked for: each look
/// compares a name with every name of its kind, and thousands of unknown names against
/// thousands of names would take minutes.
pub const MAX_SUGGESTIONS: usize = 100;

/// How deep calls of a bake file's user `function`s may nest when `hephy import` evaluates it
/// (a function calling itself is refused outright, as bake refuses it).
pub const MAX_FUNCTION_DEPTH: usize = 64;

/// How many calls of a bake file's user `function`s one expression may make when `hephy import`
/// evaluates it: functions that each call the next twice double the work at every level.
pub const MAX_FUNCTION_CALLS: usize = 10_000;
