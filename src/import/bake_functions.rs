//! The functions a bake file may call, evaluated as `docker buildx bake` evaluates them: every
//! function of buildx's standard library (`bake/hclparser/stdlib.go`, whose semantics are
//! go-cty's `function/stdlib`, HashiCorp's `go-cty-funcs` and HCL's `ext` packages), `can`
//! and `try`, `convert`, and the file's own `function` blocks.
//!
//! hcl-rs calls a function through a plain `fn` pointer with its arguments already evaluated,
//! which suits the standard library ([`declare`]) but not `can`/`try` (whose arguments may fail
//! to evaluate), `convert` (whose second argument is a type, not a value) or user functions
//! (whose result is an expression of the file). [`evaluate`] therefore walks an expression:
//! a part that calls none of those is handed to hcl-rs whole; a call of one is evaluated here,
//! and so are the conditionals, `for` expressions and templates around it, so that a branch not
//! taken is never evaluated and a `for` variable is in scope where it is used.
//!
//! Values are hcl-rs's: a number is a 64-bit integer or float (cty's are arbitrary precision),
//! lists, tuples and sets are all arrays (a set's elements sorted and deduplicated), maps and
//! objects both objects.

use std::cmp::Ordering;
use std::collections::BTreeMap;

use hcl::eval::{Context, Evaluate, FuncArgs, FuncDef, ParamType};
use hcl::expr::{Conditional, ForExpr, FuncCall, Operation, TemplateExpr, Traversal, TraversalOperator};
use hcl::template::{Directive, Element};
use hcl::{Body, Expression, Number, ObjectKey, Template, Value};
use hephy_dsl::limits::{MAX_EXPANDED_STRING, MAX_FUNCTION_CALLS, MAX_FUNCTION_DEPTH};
use unicode_segmentation::UnicodeSegmentation;

// ---------------------------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------------------------

/// Why an expression did not evaluate.
#[derive(Debug, thiserror::Error)]
pub(crate) enum EvalError {
    /// hcl-rs's evaluation failed (an undefined variable, a standard function's error, …).
    #[error(transparent)]
    Hcl(#[from] hcl::eval::Error),
    /// A user function calls itself, directly or through others; buildx refuses the same.
    #[error("function `{name}` calls itself ({chain}): bake does not allow recursive functions")]
    Recursion { name: String, chain: String },
    /// User functions nest deeper than [`MAX_FUNCTION_DEPTH`].
    #[error("function `{name}`: calls of user functions nest more than {MAX_FUNCTION_DEPTH} deep")]
    Depth { name: String },
    /// One expression calls user functions more than [`MAX_FUNCTION_CALLS`] times.
    #[error("function `{name}`: one expression calls user functions more than {MAX_FUNCTION_CALLS} times")]
    Calls { name: String },
    /// A user function is called with the wrong number of arguments.
    #[error("function `{name}` takes {expected} arguments, and is given {given}")]
    Arity { name: String, expected: String, given: usize },
    /// `can`, `try` or `convert` is called wrongly, or a standard function's arguments fail here.
    #[error("function `{name}`: {error}")]
    Function { name: String, error: FnError },
    /// `try` was given arguments none of which evaluates.
    #[error("`try`: no argument evaluates; the last fails with: {last}")]
    Try { last: Box<EvalError> },
    /// A value of the wrong kind where this evaluator needs one (a `for` collection, a condition).
    #[error("{place}: expected {expected}, found {found}")]
    Unexpected { place: &'static str, expected: &'static str, found: &'static str },
    /// A `for` expression makes one object key twice without grouping (`...`).
    #[error("`for` expression: key `{0}` is made twice (add `...` to group the values)")]
    KeyExists(String),
    /// `can`, `try`, `convert` or a user function inside a template's `%{for}`.
    #[error(
        "`{name}` is called inside a template's `%{{for}}`, where hephy does not evaluate it: write a `for` expression and `join` instead"
    )]
    TemplateFor { name: String },
    /// A user function's arguments or result larger than [`MAX_EXPANDED_STRING`] bytes.
    #[error("function `{name}`: its arguments or result are larger than {MAX_EXPANDED_STRING} bytes")]
    TooLarge { name: String },
    /// A template that does not parse.
    #[error(transparent)]
    Template(#[from] hcl::Error),
}

impl EvalError {
    /// The variable whose being undefined made the evaluation fail, if that is why.
    pub(crate) fn undefined_var(&self) -> Option<&str> {
        match self {
            EvalError::Hcl(e) => match e.kind() {
                hcl::eval::ErrorKind::UndefinedVar(var) => Some(var.as_str()),
                _ => None,
            },
            _ => None,
        }
    }

    /// Whether this error ends the evaluation even inside `can`/`try`: limits and recursion
    /// are errors of the file, not of a value.
    fn is_fatal(&self) -> bool {
        match self {
            EvalError::Recursion { .. }
            | EvalError::Depth { .. }
            | EvalError::Calls { .. }
            | EvalError::TooLarge { .. }
            | EvalError::TemplateFor { .. } => true,
            EvalError::Try { last } => last.is_fatal(),
            _ => false,
        }
    }
}

/// Why a `function` block cannot be used.
#[derive(Debug, thiserror::Error)]
pub(crate) enum FunctionsError {
    /// A `function` block without a name label.
    #[error("a `function` block has no name: write `function \"NAME\" {{ … }}`")]
    Unnamed,
    /// Two `function` blocks of one name.
    #[error("function `{0}` is defined twice: rename or remove one")]
    Duplicate(String),
    /// A name of buildx's standard library, which buildx looks up first.
    #[error("function `{0}` has the name of a standard function, which bake calls instead: rename it")]
    Shadows(String),
    /// `params` missing or not a list of names.
    #[error("function `{0}`: `params` must be a list of names, as in `params = [name, tag]`")]
    Params(String),
    /// `variadic_params` not a name.
    #[error("function `{0}`: `variadic_params` must be a name, as in `variadic_params = rest`")]
    Variadic(String),
    /// No `result`.
    #[error("function `{0}` has no `result`: add `result = …`")]
    Result(String),
}

/// Why a standard function refused its arguments (hcl-rs reports it as the call's error).
#[derive(Debug, thiserror::Error)]
pub(crate) enum FnError {
    #[error("argument {0} must not be null")]
    Null(usize),
    #[error("argument {index}: expected {expected}, found {found}")]
    Type { index: usize, expected: &'static str, found: &'static str },
    #[error("argument {index}: `{text}` is not a number")]
    NotNumber { index: usize, text: String },
    #[error("argument {index}: {value} is not a whole number")]
    NotInteger { index: usize, value: f64 },
    #[error("the result is not a finite number")]
    NotFinite,
    #[error("{what} is out of range")]
    OutOfRange { what: &'static str },
    #[error("{0}")]
    Invalid(&'static str),
    #[error("the given key does not identify an element in this collection value")]
    NoKey,
    #[error("invalid regular expression: {0}")]
    Regex(#[from] regex::Error),
    #[error("named and unnamed capture groups may not be mixed in one pattern")]
    MixedCaptures,
    #[error("pattern did not match any part of the given string")]
    NoMatch,
    #[error("`{0}` is not a valid RFC 3339 timestamp")]
    Timestamp(String),
    #[error("invalid date format verb `{0}`")]
    DateVerb(String),
    #[error("unterminated literal `'` in the date format")]
    DateLiteral,
    #[error("`{0}` is not a duration (such as `1h30m`, `-10s`)")]
    Duration(String),
    #[error("invalid JSON: {0}")]
    Json(#[from] serde_json::Error),
    #[error("invalid base64 data: {0}")]
    Base64(#[from] base64::DecodeError),
    #[error("the decoded data is not UTF-8 text")]
    Utf8,
    #[error("CSV line {line}: {problem}")]
    Csv { line: usize, problem: &'static str },
    #[error("`{text}` is not a CIDR prefix or address: {problem}")]
    Cidr { text: String, problem: &'static str },
    #[error("`{0}` is not a semantic version or constraint")]
    Semver(String),
    #[error("`{0}` is not a UUID namespace (`dns`, `url`, `oid`, `x500` or a UUID)")]
    Uuid(String),
    #[error("no random numbers: {0}")]
    Random(getrandom::Error),
    #[error("format string: {0}")]
    Format(&'static str),
    #[error("cannot convert {found} to {to}")]
    Convert { found: &'static str, to: &'static str },
    #[error(
        "`{found}` is not a type (use string, number, bool, any, list(T), set(T), map(T), tuple([…]), object({{…}}))"
    )]
    TypeExpr { found: String },
    #[error("is not evaluated by `hephy import`: {0}")]
    Refused(&'static str),
}

type FnResult = Result<Value, FnError>;

// ---------------------------------------------------------------------------------------------
// User functions
// ---------------------------------------------------------------------------------------------

/// One `function` block.
#[derive(Debug, Clone)]
struct UserFunction {
    params: Vec<String>,
    variadic: Option<String>,
    result: Expression,
}

/// The `function` blocks of a bake file, by name.
#[derive(Debug, Clone, Default)]
pub(crate) struct UserFunctions {
    defs: BTreeMap<String, UserFunction>,
    /// The file's `variable` names: one not yet evaluated is no failure `can`/`try` may hide
    /// (the caller evaluates it first and tries again, as buildx resolves variables lazily).
    variables: std::collections::BTreeSet<String>,
}

impl UserFunctions {
    /// Collects the `function` blocks of `body`. Blocks that are unusable are named in the
    /// errors returned beside the rest, so one bad function does not lose the others.
    pub(crate) fn from_body(body: &Body) -> (UserFunctions, Vec<FunctionsError>) {
        let mut functions = UserFunctions::default();
        let mut errors = Vec::new();
        functions.variables = body
            .blocks()
            .filter(|b| b.identifier.as_str() == "variable")
            .filter_map(|b| b.labels.first().map(|l| l.as_str().to_owned()))
            .collect();
        for block in body.blocks().filter(|b| b.identifier.as_str() == "function") {
            let Some(name) = block.labels.first().map(|l| match l {
                hcl::BlockLabel::Identifier(i) => i.as_str().to_owned(),
                hcl::BlockLabel::String(s) => s.clone(),
            }) else {
                errors.push(FunctionsError::Unnamed);
                continue;
            };
            match user_function(&name, &block.body) {
                Ok(_) if functions.defs.contains_key(&name) => errors.push(FunctionsError::Duplicate(name)),
                Ok(_) if STDLIB.iter().any(|(n, _)| *n == name) || SPECIAL.contains(&name.as_str()) => {
                    errors.push(FunctionsError::Shadows(name))
                }
                Ok(f) => {
                    functions.defs.insert(name, f);
                }
                Err(e) => errors.push(e),
            }
        }
        (functions, errors)
    }

    /// Whether a user function of this name exists.
    pub(crate) fn contains(&self, name: &str) -> bool {
        self.defs.contains_key(name)
    }
}

fn user_function(name: &str, body: &Body) -> Result<UserFunction, FunctionsError> {
    let attr = |key: &str| body.attributes().find(|a| a.key.as_str() == key).map(|a| &a.expr);
    let keyword = |e: &Expression| match e {
        Expression::Variable(v) => Some(v.as_str().to_owned()),
        _ => None,
    };
    let params = match attr("params") {
        Some(Expression::Array(items)) => items
            .iter()
            .map(|e| keyword(e).ok_or_else(|| FunctionsError::Params(name.to_owned())))
            .collect::<Result<Vec<_>, _>>()?,
        _ => return Err(FunctionsError::Params(name.to_owned())),
    };
    let variadic = match attr("variadic_params") {
        None => None,
        Some(e) => Some(keyword(e).ok_or_else(|| FunctionsError::Variadic(name.to_owned()))?),
    };
    let result = attr("result").cloned().ok_or_else(|| FunctionsError::Result(name.to_owned()))?;
    Ok(UserFunction { params, variadic, result })
}

/// The functions evaluated here rather than by hcl-rs (their arguments need control).
const SPECIAL: [&str; 3] = ["can", "try", "convert"];

// ---------------------------------------------------------------------------------------------
// Evaluation
// ---------------------------------------------------------------------------------------------

/// Evaluates `expr` in `ctx` (variables and [`declare`]d functions) with the file's user
/// `functions`, `can`, `try` and `convert`.
pub(crate) fn evaluate(
    expr: &Expression,
    ctx: &Context<'_>,
    functions: &UserFunctions,
) -> Result<Value, EvalError> {
    Run { functions, stack: Vec::new(), calls: 0 }.eval(expr, ctx)
}

struct Run<'f> {
    functions: &'f UserFunctions,
    /// The user functions being evaluated, outermost first.
    stack: Vec<String>,
    /// User function calls so far.
    calls: usize,
}

impl Run<'_> {
    /// Whether `error` ends the evaluation even inside `can`/`try`: a limit, recursion, or a
    /// declared variable not yet evaluated.
    fn passes_through(&self, error: &EvalError) -> bool {
        error.is_fatal() || error.undefined_var().is_some_and(|v| self.functions.variables.contains(v))
    }

    /// Whether a call of `name` is evaluated here.
    fn is_special(&self, name: &hcl::expr::FuncName) -> bool {
        name.namespace.is_empty()
            && (SPECIAL.contains(&name.name.as_str()) || self.functions.contains(name.name.as_str()))
    }

    /// Whether `expr` calls a function evaluated here, anywhere inside.
    fn needs(&self, expr: &Expression) -> bool {
        match expr {
            Expression::Null
            | Expression::Bool(_)
            | Expression::Number(_)
            | Expression::String(_)
            | Expression::Variable(_) => false,
            Expression::Array(items) => items.iter().any(|e| self.needs(e)),
            Expression::Object(map) => map
                .iter()
                .any(|(k, v)| matches!(k, ObjectKey::Expression(k) if self.needs(k)) || self.needs(v)),
            Expression::TemplateExpr(t) => match Template::from_expr(t) {
                Ok(template) => self.template_needs(&template),
                Err(_) => false,
            },
            Expression::Traversal(t) => {
                self.needs(&t.expr)
                    || t.operators.iter().any(|op| matches!(op, TraversalOperator::Index(e) if self.needs(e)))
            }
            Expression::FuncCall(call) => {
                self.is_special(&call.name) || call.args.iter().any(|a| self.needs(a))
            }
            Expression::Parenthesis(e) => self.needs(e),
            Expression::Conditional(c) => {
                self.needs(&c.cond_expr) || self.needs(&c.true_expr) || self.needs(&c.false_expr)
            }
            Expression::Operation(op) => match op.as_ref() {
                Operation::Unary(u) => self.needs(&u.expr),
                Operation::Binary(b) => self.needs(&b.lhs_expr) || self.needs(&b.rhs_expr),
            },
            Expression::ForExpr(f) => {
                self.needs(&f.collection_expr)
                    || f.key_expr.as_ref().is_some_and(|k| self.needs(k))
                    || self.needs(&f.value_expr)
                    || f.cond_expr.as_ref().is_some_and(|c| self.needs(c))
            }
            _ => false,
        }
    }

    fn template_needs(&self, template: &Template) -> bool {
        template.elements().iter().any(|element| match element {
            Element::Literal(_) => false,
            Element::Interpolation(i) => self.needs(&i.expr),
            Element::Directive(d) => match d.as_ref() {
                Directive::If(d) => {
                    self.needs(&d.cond_expr)
                        || self.template_needs(&d.true_template)
                        || d.false_template.as_ref().is_some_and(|t| self.template_needs(t))
                }
                Directive::For(d) => self.needs(&d.collection_expr) || self.template_needs(&d.template),
            },
        })
    }

    fn eval(&mut self, expr: &Expression, ctx: &Context<'_>) -> Result<Value, EvalError> {
        if !self.needs(expr) {
            return Ok(expr.evaluate(ctx)?);
        }
        match expr {
            Expression::FuncCall(call) if self.is_special(&call.name) => self.call(call, ctx),
            Expression::Parenthesis(e) => self.eval(e, ctx),
            Expression::Conditional(c) => self.conditional(c, ctx),
            Expression::ForExpr(f) => self.for_expr(f, ctx),
            Expression::TemplateExpr(t) => self.template_expr(t, ctx),
            other => {
                let rewritten = self.rewrite(other, ctx)?;
                Ok(rewritten.evaluate(ctx)?)
            }
        }
    }

    /// `expr` with each direct part that needs this evaluator replaced by its value.
    fn part(&mut self, expr: &Expression, ctx: &Context<'_>) -> Result<Expression, EvalError> {
        if self.needs(expr) { Ok(Expression::from(self.eval(expr, ctx)?)) } else { Ok(expr.clone()) }
    }

    fn rewrite(&mut self, expr: &Expression, ctx: &Context<'_>) -> Result<Expression, EvalError> {
        Ok(match expr {
            Expression::Array(items) => {
                Expression::Array(items.iter().map(|e| self.part(e, ctx)).collect::<Result<_, _>>()?)
            }
            Expression::Object(map) => {
                let mut out = hcl::Object::new();
                for (k, v) in map {
                    let key = match k {
                        ObjectKey::Expression(k) => ObjectKey::Expression(self.part(k, ctx)?),
                        other => other.clone(),
                    };
                    out.insert(key, self.part(v, ctx)?);
                }
                Expression::Object(out)
            }
            Expression::Traversal(t) => {
                let mut operators = Vec::with_capacity(t.operators.len());
                for op in &t.operators {
                    operators.push(match op {
                        TraversalOperator::Index(e) => TraversalOperator::Index(self.part(e, ctx)?),
                        other => other.clone(),
                    });
                }
                Expression::Traversal(Box::new(Traversal::new(self.part(&t.expr, ctx)?, operators)))
            }
            Expression::FuncCall(call) => {
                let mut out = FuncCall::new(call.name.clone());
                out.args = call.args.iter().map(|a| self.part(a, ctx)).collect::<Result<_, _>>()?;
                out.expand_final = call.expand_final;
                Expression::FuncCall(Box::new(out))
            }
            Expression::Operation(op) => Expression::Operation(Box::new(match op.as_ref() {
                Operation::Unary(u) => {
                    let mut u = u.clone();
                    u.expr = self.part(&u.expr, ctx)?;
                    Operation::Unary(u)
                }
                Operation::Binary(b) => {
                    let mut b = b.clone();
                    b.lhs_expr = self.part(&b.lhs_expr, ctx)?;
                    b.rhs_expr = self.part(&b.rhs_expr, ctx)?;
                    Operation::Binary(b)
                }
            })),
            other => Expression::from(self.eval(other, ctx)?),
        })
    }

    fn conditional(&mut self, c: &Conditional, ctx: &Context<'_>) -> Result<Value, EvalError> {
        match self.eval(&c.cond_expr, ctx)? {
            Value::Bool(true) => self.eval(&c.true_expr, ctx),
            Value::Bool(false) => self.eval(&c.false_expr, ctx),
            other => {
                Err(EvalError::Unexpected { place: "condition", expected: "a bool", found: kind(&other) })
            }
        }
    }

    fn for_expr(&mut self, f: &ForExpr, ctx: &Context<'_>) -> Result<Value, EvalError> {
        let items: Vec<(Value, Value)> = match self.eval(&f.collection_expr, ctx)? {
            Value::Array(items) => items.into_iter().enumerate().map(|(i, v)| (Value::from(i), v)).collect(),
            Value::Object(map) => map.into_iter().map(|(k, v)| (Value::String(k), v)).collect(),
            other => {
                return Err(EvalError::Unexpected {
                    place: "`for` expression",
                    expected: "a list or an object",
                    found: kind(&other),
                });
            }
        };
        let mut array = Vec::new();
        let mut object: hcl::Map<String, Value> = hcl::Map::new();
        let mut groups: hcl::Map<String, Vec<Value>> = hcl::Map::new();
        for (key, value) in items {
            let mut ctx = ctx.clone();
            if let Some(k) = &f.key_var {
                ctx.declare_var(k.clone(), key);
            }
            ctx.declare_var(f.value_var.clone(), value);
            if let Some(cond) = &f.cond_expr {
                match self.eval(cond, &ctx)? {
                    Value::Bool(true) => {}
                    Value::Bool(false) => continue,
                    other => {
                        return Err(EvalError::Unexpected {
                            place: "`for` condition",
                            expected: "a bool",
                            found: kind(&other),
                        });
                    }
                }
            }
            let value = self.eval(&f.value_expr, &ctx)?;
            match &f.key_expr {
                None => array.push(value),
                Some(key_expr) => {
                    let key = match self.eval(key_expr, &ctx)? {
                        Value::String(s) => s,
                        v @ (Value::Number(_) | Value::Bool(_)) => v.to_string(),
                        other => {
                            return Err(EvalError::Unexpected {
                                place: "`for` key",
                                expected: "a string",
                                found: kind(&other),
                            });
                        }
                    };
                    if f.grouping {
                        groups.entry(key).or_default().push(value);
                    } else if object.contains_key(&key) {
                        return Err(EvalError::KeyExists(key));
                    } else {
                        object.insert(key, value);
                    }
                }
            }
        }
        if f.grouping && f.key_expr.is_some() {
            return Ok(Value::Object(groups.into_iter().map(|(k, v)| (k, Value::Array(v))).collect()));
        }
        Ok(if f.key_expr.is_some() { Value::Object(object) } else { Value::Array(array) })
    }

    fn template_expr(&mut self, t: &TemplateExpr, ctx: &Context<'_>) -> Result<Value, EvalError> {
        let mut template = Template::from_expr(t)?;
        // A template of one interpolation is its value, not a string (HCL's unwrapping).
        if let [Element::Interpolation(i)] = template.elements() {
            return self.eval(&i.expr.clone(), ctx);
        }
        self.template(&mut template, ctx)?;
        Ok(Value::String(template.evaluate(ctx)?))
    }

    /// Replaces, in place, each interpolation and directive expression that needs this
    /// evaluator by its value.
    fn template(&mut self, template: &mut Template, ctx: &Context<'_>) -> Result<(), EvalError> {
        for element in template.elements_mut() {
            match element {
                Element::Literal(_) => {}
                Element::Interpolation(i) => i.expr = self.part(&i.expr, ctx)?,
                Element::Directive(d) => match d.as_mut() {
                    Directive::If(d) => {
                        d.cond_expr = self.part(&d.cond_expr, ctx)?;
                        self.template(&mut d.true_template, ctx)?;
                        if let Some(f) = &mut d.false_template {
                            self.template(f, ctx)?;
                        }
                    }
                    Directive::For(d) => {
                        d.collection_expr = self.part(&d.collection_expr, ctx)?;
                        if self.template_needs(&d.template) {
                            return Err(EvalError::TemplateFor { name: self.first_special(&d.template) });
                        }
                    }
                },
            }
        }
        Ok(())
    }

    /// The name of a function in `template` evaluated here (for a message).
    fn first_special(&self, template: &Template) -> String {
        let text = Expression::TemplateExpr(Box::new(TemplateExpr::QuotedString(template.to_string())));
        let mut found = String::from("a function");
        let mut stack = vec![text];
        while let Some(e) = stack.pop() {
            match e {
                Expression::FuncCall(c) if self.is_special(&c.name) => {
                    found = c.name.name.to_string();
                    break;
                }
                Expression::FuncCall(c) => stack.extend(c.args),
                Expression::TemplateExpr(t) => {
                    if let Ok(t) = Template::from_expr(&t) {
                        for el in t.elements() {
                            match el {
                                Element::Interpolation(i) => stack.push(i.expr.clone()),
                                Element::Directive(d) => match d.as_ref() {
                                    Directive::For(d) => stack.push(Expression::TemplateExpr(Box::new(
                                        TemplateExpr::QuotedString(d.template.to_string()),
                                    ))),
                                    Directive::If(d) => stack.push(d.cond_expr.clone()),
                                },
                                Element::Literal(_) => {}
                            }
                        }
                    }
                }
                _ => {}
            }
        }
        found
    }

    /// The arguments of `call`, evaluated (the last one spread by `...`).
    fn args(&mut self, call: &FuncCall, ctx: &Context<'_>) -> Result<Vec<Value>, EvalError> {
        let mut args = call.args.iter().map(|a| self.eval(a, ctx)).collect::<Result<Vec<_>, _>>()?;
        if call.expand_final {
            match args.pop() {
                Some(Value::Array(rest)) => args.extend(rest),
                Some(other) => {
                    return Err(EvalError::Unexpected {
                        place: "the argument before `...`",
                        expected: "a list",
                        found: kind(&other),
                    });
                }
                None => {}
            }
        }
        Ok(args)
    }

    fn call(&mut self, call: &FuncCall, ctx: &Context<'_>) -> Result<Value, EvalError> {
        let name = call.name.name.as_str();
        match name {
            "can" => {
                let [arg] = call.args.as_slice() else {
                    return Err(EvalError::Arity {
                        name: "can".into(),
                        expected: "1".into(),
                        given: call.args.len(),
                    });
                };
                match self.eval(arg, ctx) {
                    Ok(_) => Ok(Value::Bool(true)),
                    Err(e) if self.passes_through(&e) => Err(e),
                    Err(_) => Ok(Value::Bool(false)),
                }
            }
            "try" => {
                let mut last = None;
                for arg in &call.args {
                    match self.eval(arg, ctx) {
                        Ok(v) => return Ok(v),
                        Err(e) if self.passes_through(&e) => return Err(e),
                        Err(e) => last = Some(e),
                    }
                }
                match last {
                    Some(last) => Err(EvalError::Try { last: Box::new(last) }),
                    None => {
                        Err(EvalError::Arity { name: "try".into(), expected: "at least 1".into(), given: 0 })
                    }
                }
            }
            "convert" => {
                let [value, ty] = call.args.as_slice() else {
                    return Err(EvalError::Arity {
                        name: "convert".into(),
                        expected: "2".into(),
                        given: call.args.len(),
                    });
                };
                let value = self.eval(value, ctx)?;
                let ty =
                    type_expr(ty).map_err(|error| EvalError::Function { name: "convert".into(), error })?;
                convert(value, &ty).map_err(|error| EvalError::Function { name: "convert".into(), error })
            }
            _ => self.call_user(name, call, ctx),
        }
    }

    fn call_user(&mut self, name: &str, call: &FuncCall, ctx: &Context<'_>) -> Result<Value, EvalError> {
        let functions = self.functions;
        let Some(def) = functions.defs.get(name) else {
            return Ok(Expression::FuncCall(Box::new(call.clone())).evaluate(ctx)?);
        };
        if self.stack.iter().any(|s| s == name) {
            let mut chain = self.stack.clone();
            chain.push(name.to_owned());
            return Err(EvalError::Recursion { name: name.to_owned(), chain: chain.join(" → ") });
        }
        if self.stack.len() >= MAX_FUNCTION_DEPTH {
            return Err(EvalError::Depth { name: name.to_owned() });
        }
        self.calls += 1;
        if self.calls > MAX_FUNCTION_CALLS {
            return Err(EvalError::Calls { name: name.to_owned() });
        }
        let mut args = self.args(call, ctx)?;
        let fixed = def.params.len();
        if args.len() < fixed || (args.len() > fixed && def.variadic.is_none()) {
            let expected =
                if def.variadic.is_some() { format!("at least {fixed}") } else { fixed.to_string() };
            return Err(EvalError::Arity { name: name.to_owned(), expected, given: args.len() });
        }
        if args.iter().fold(0usize, |n, v| n.saturating_add(size(v))) > MAX_EXPANDED_STRING {
            return Err(EvalError::TooLarge { name: name.to_owned() });
        }
        let rest = args.split_off(fixed);
        let mut inner = ctx.clone();
        for (param, value) in def.params.iter().zip(args) {
            inner.declare_var(param.clone(), value);
        }
        if let Some(variadic) = &def.variadic {
            inner.declare_var(variadic.clone(), Value::Array(rest));
        }
        self.stack.push(name.to_owned());
        let result = self.eval(&def.result, &inner);
        self.stack.pop();
        // A function doubling its argument, called on its own result, would grow without
        // bound long before the call limit.
        match result {
            Ok(value) if size(&value) > MAX_EXPANDED_STRING => {
                Err(EvalError::TooLarge { name: name.to_owned() })
            }
            other => other,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// `convert`
// ---------------------------------------------------------------------------------------------

/// A type constraint of `convert`.
#[derive(Debug, Clone)]
enum Type {
    Any,
    String,
    Number,
    Bool,
    List(Box<Type>),
    Set(Box<Type>),
    Map(Box<Type>),
    Tuple(Vec<Type>),
    Object(Vec<(String, Type)>),
}

fn type_expr(expr: &Expression) -> Result<Type, FnError> {
    let bad = || FnError::TypeExpr { found: hephy_dsl::escape::excerpt(&expr.to_string(), 60).into_owned() };
    match expr {
        Expression::Variable(v) => match v.as_str() {
            "any" => Ok(Type::Any),
            "string" => Ok(Type::String),
            "number" => Ok(Type::Number),
            "bool" => Ok(Type::Bool),
            _ => Err(bad()),
        },
        Expression::FuncCall(call) if call.name.namespace.is_empty() && call.args.len() == 1 => {
            let arg = &call.args[0];
            match call.name.name.as_str() {
                "list" => Ok(Type::List(Box::new(type_expr(arg)?))),
                "set" => Ok(Type::Set(Box::new(type_expr(arg)?))),
                "map" => Ok(Type::Map(Box::new(type_expr(arg)?))),
                "tuple" => match arg {
                    Expression::Array(items) => {
                        Ok(Type::Tuple(items.iter().map(type_expr).collect::<Result<_, _>>()?))
                    }
                    _ => Err(bad()),
                },
                "object" => match arg {
                    Expression::Object(map) => {
                        let mut fields = Vec::new();
                        for (k, v) in map {
                            let key = match k {
                                ObjectKey::Identifier(i) => i.as_str().to_owned(),
                                ObjectKey::Expression(Expression::String(s)) => s.clone(),
                                ObjectKey::Expression(Expression::Variable(v)) => v.as_str().to_owned(),
                                _ => return Err(bad()),
                            };
                            fields.push((key, type_expr(v)?));
                        }
                        Ok(Type::Object(fields))
                    }
                    _ => Err(bad()),
                },
                _ => Err(bad()),
            }
        }
        _ => Err(bad()),
    }
}

fn convert(value: Value, ty: &Type) -> FnResult {
    if value.is_null() {
        return Ok(Value::Null);
    }
    let found = kind(&value);
    let fail = |to| FnError::Convert { found, to };
    match ty {
        Type::Any => Ok(value),
        Type::String => match value {
            Value::String(_) => Ok(value),
            Value::Number(n) => Ok(Value::String(n.to_string())),
            Value::Bool(b) => Ok(Value::String(b.to_string())),
            _ => Err(fail("string")),
        },
        Type::Number => match &value {
            Value::Number(_) => Ok(value),
            Value::String(s) => s
                .trim()
                .parse::<f64>()
                .ok()
                .and_then(Number::from_f64)
                .map(Value::Number)
                .ok_or(fail("number")),
            _ => Err(fail("number")),
        },
        Type::Bool => match value.as_str() {
            _ if value.is_boolean() => Ok(value),
            Some("true") => Ok(Value::Bool(true)),
            Some("false") => Ok(Value::Bool(false)),
            _ => Err(fail("bool")),
        },
        Type::List(t) | Type::Set(t) => {
            let items = match value {
                Value::Array(items) => items,
                _ => return Err(fail("a list")),
            };
            let items = items.into_iter().map(|v| convert(v, t)).collect::<Result<Vec<_>, _>>()?;
            Ok(Value::Array(if matches!(ty, Type::Set(_)) { set_of(items) } else { items }))
        }
        Type::Map(t) => match value {
            Value::Object(map) => Ok(Value::Object(
                map.into_iter().map(|(k, v)| Ok((k, convert(v, t)?))).collect::<Result<_, FnError>>()?,
            )),
            _ => Err(fail("a map")),
        },
        Type::Tuple(types) => match value {
            Value::Array(items) if items.len() == types.len() => Ok(Value::Array(
                items.into_iter().zip(types).map(|(v, t)| convert(v, t)).collect::<Result<_, _>>()?,
            )),
            _ => Err(fail("a tuple of that length")),
        },
        Type::Object(fields) => match value {
            Value::Object(mut map) => {
                let mut out = hcl::Map::new();
                for (k, t) in fields {
                    let v = map
                        .swap_remove(k)
                        .ok_or(FnError::Invalid("the object lacks an attribute the type requires"))?;
                    out.insert(k.clone(), convert(v, t)?);
                }
                Ok(Value::Object(out))
            }
            _ => Err(fail("an object")),
        },
    }
}

// ---------------------------------------------------------------------------------------------
// Value helpers
// ---------------------------------------------------------------------------------------------

/// The kind of a value, as messages name it.
fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a bool",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

fn arg(args: &[Value], index: usize) -> Result<&Value, FnError> {
    match args.get(index) {
        None | Some(Value::Null) => Err(FnError::Null(index + 1)),
        Some(v) => Ok(v),
    }
}

/// Argument `index` as a string (numbers and bools converted, as cty converts them).
fn string(args: &[Value], index: usize) -> Result<String, FnError> {
    match arg(args, index)? {
        Value::String(s) => Ok(s.clone()),
        Value::Number(n) => Ok(n.to_string()),
        Value::Bool(b) => Ok(b.to_string()),
        other => Err(FnError::Type { index: index + 1, expected: "a string", found: kind(other) }),
    }
}

fn number(args: &[Value], index: usize) -> Result<f64, FnError> {
    match arg(args, index)? {
        Value::Number(n) => n.as_f64().ok_or(FnError::NotFinite),
        Value::String(s) => s
            .trim()
            .parse::<f64>()
            .ok()
            .filter(|f| f.is_finite())
            .ok_or_else(|| FnError::NotNumber { index: index + 1, text: s.clone() }),
        other => Err(FnError::Type { index: index + 1, expected: "a number", found: kind(other) }),
    }
}

fn integer(args: &[Value], index: usize) -> Result<i64, FnError> {
    if let Value::Number(n) = arg(args, index)?
        && let Some(i) = n.as_i64()
    {
        return Ok(i);
    }
    let f = number(args, index)?;
    if f.fract() != 0.0 || f.abs() > 9.0e15 {
        return Err(FnError::NotInteger { index: index + 1, value: f });
    }
    Ok(f as i64)
}

fn boolean(args: &[Value], index: usize) -> Result<bool, FnError> {
    match arg(args, index)? {
        Value::Bool(b) => Ok(*b),
        Value::String(s) if s == "true" => Ok(true),
        Value::String(s) if s == "false" => Ok(false),
        other => Err(FnError::Type { index: index + 1, expected: "a bool", found: kind(other) }),
    }
}

fn list(args: &[Value], index: usize) -> Result<&Vec<Value>, FnError> {
    match arg(args, index)? {
        Value::Array(items) => Ok(items),
        other => Err(FnError::Type { index: index + 1, expected: "a list", found: kind(other) }),
    }
}

fn object(args: &[Value], index: usize) -> Result<&hcl::Map<String, Value>, FnError> {
    match arg(args, index)? {
        Value::Object(map) => Ok(map),
        other => Err(FnError::Type { index: index + 1, expected: "a map or object", found: kind(other) }),
    }
}

fn num(f: f64) -> FnResult {
    Number::from_f64(f).map(Value::Number).ok_or(FnError::NotFinite)
}

fn text(s: impl Into<String>) -> FnResult {
    Ok(Value::String(s.into()))
}

/// cty's order of set elements: numbers by value, strings lexically, bools false first;
/// other values by their JSON text.
fn compare(a: &Value, b: &Value) -> Ordering {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => {
            x.as_f64().unwrap_or(0.0).partial_cmp(&y.as_f64().unwrap_or(0.0)).unwrap_or(Ordering::Equal)
        }
        (Value::String(x), Value::String(y)) => x.cmp(y),
        (Value::Bool(x), Value::Bool(y)) => x.cmp(y),
        _ => json_text(a).cmp(&json_text(b)),
    }
}

/// A set: the values sorted and deduplicated.
fn set_of(mut items: Vec<Value>) -> Vec<Value> {
    items.sort_by(compare);
    items.dedup();
    items
}

/// About how many bytes a value holds.
fn size(value: &Value) -> usize {
    match value {
        Value::String(s) => s.len(),
        Value::Array(items) => items.iter().fold(8, |n, v| n.saturating_add(size(v))),
        Value::Object(map) => {
            map.iter().fold(8, |n, (k, v)| n.saturating_add(k.len()).saturating_add(size(v)))
        }
        _ => 8,
    }
}

/// Refuses a string result longer than [`MAX_EXPANDED_STRING`] before it is made.
fn fits(bytes: usize) -> Result<(), FnError> {
    if bytes > MAX_EXPANDED_STRING {
        return Err(FnError::OutOfRange { what: "the result's length (at most 1 MiB)" });
    }
    Ok(())
}

fn graphemes(s: &str) -> usize {
    s.graphemes(true).count()
}

// ---------------------------------------------------------------------------------------------
// The standard library
// ---------------------------------------------------------------------------------------------

/// A standard function: its parameter count (`None`: variadic, checked by the function) and
/// its implementation.
type Std = fn(&[Value]) -> FnResult;

macro_rules! stdlib {
    ($($name:literal => ($arity:expr, $f:expr)),* $(,)?) => {
        /// buildx's standard library (`bake/hclparser/stdlib.go`), less `can`, `try` and
        /// `convert` (evaluated by [`evaluate`]).
        const STDLIB: &[(&str, (Option<usize>, Std))] = &[$(($name, ($arity, $f))),*];

        /// Declares buildx's standard functions in `ctx`.
        pub(crate) fn declare(ctx: &mut Context<'_>) {
            $(
                let arity: Option<usize> = $arity;
                let func: hcl::eval::Func = |a: FuncArgs| {
                    let f: Std = $f;
                    f(&a).map_err(|e| e.to_string())
                };
                let def = match arity {
                    Some(n) => FuncDef::new(func, std::iter::repeat_n(ParamType::Any, n)),
                    None => FuncDef::builder().variadic_param(ParamType::Any).build(func),
                };
                ctx.declare_func($name, def);
            )*
        }
    };
}

const fn n(count: usize) -> Option<usize> {
    Some(count)
}
const VARIADIC: Option<usize> = None;

stdlib! {
    "absolute" => (n(1), |a| num(number(a, 0)?.abs())),
    "add" => (n(2), |a| num(number(a, 0)? + number(a, 1)?)),
    "and" => (n(2), |a| Ok(Value::Bool(boolean(a, 0)? && boolean(a, 1)?))),
    "base64decode" => (n(1), base64decode),
    "base64encode" => (n(1), |a| {
        use base64::Engine as _;
        text(base64::engine::general_purpose::STANDARD.encode(string(a, 0)?))
    }),
    "basename" => (n(1), |a| text(go_path_base(&string(a, 0)?))),
    "bcrypt" => (VARIADIC, |_| Err(FnError::Refused("`bcrypt` salts its hash at random, so hephy does not carry it: write the hash"))),
    "byteslen" => (n(1), |_| Err(FnError::Refused("`byteslen` takes a bytes buffer, which no bake expression makes"))),
    "bytesslice" => (n(3), |_| Err(FnError::Refused("`bytesslice` takes a bytes buffer, which no bake expression makes"))),
    "ceil" => (n(1), |a| num(number(a, 0)?.ceil())),
    "chomp" => (n(1), |a| {
        let s = string(a, 0)?;
        // go-cty removes `(?:\r\n?|\n)*` at the end: every trailing CR and LF.
        text(s.trim_end_matches(['\n', '\r']).to_owned())
    }),
    "chunklist" => (n(2), chunklist),
    "cidrhost" => (n(2), cidrhost),
    "cidrnetmask" => (n(1), cidrnetmask),
    "cidrsubnet" => (n(3), cidrsubnet),
    "cidrsubnets" => (VARIADIC, cidrsubnets),
    "coalesce" => (VARIADIC, |a| a.iter().find(|v| !v.is_null()).cloned().ok_or(FnError::Invalid("no non-null arguments"))),
    "coalescelist" => (VARIADIC, |a| {
        for (i, v) in a.iter().enumerate() {
            match v {
                Value::Array(items) if !items.is_empty() => return Ok(v.clone()),
                Value::Array(_) | Value::Null => {}
                other => return Err(FnError::Type { index: i + 1, expected: "a list", found: kind(other) }),
            }
        }
        Err(FnError::Invalid("no non-null arguments"))
    }),
    "compact" => (n(1), |a| Ok(Value::Array(
        list(a, 0)?.iter().filter(|v| !v.is_null() && v.as_str() != Some("")).cloned().collect(),
    ))),
    "concat" => (VARIADIC, |a| {
        if a.is_empty() {
            return Err(FnError::Invalid("at least one list is required"));
        }
        let mut out = Vec::new();
        for i in 0..a.len() {
            out.extend(list(a, i)?.iter().cloned());
        }
        Ok(Value::Array(out))
    }),
    "contains" => (n(2), |a| Ok(Value::Bool(list(a, 0)?.iter().any(|v| equal(v, &a[1]))))),
    "csvdecode" => (n(1), csvdecode),
    "dirname" => (n(1), |a| text(go_path_dir(&string(a, 0)?))),
    "distinct" => (n(1), |a| {
        let mut out: Vec<Value> = Vec::new();
        for v in list(a, 0)? {
            if !out.iter().any(|o| equal(o, v)) {
                out.push(v.clone());
            }
        }
        Ok(Value::Array(out))
    }),
    "divide" => (n(2), |a| {
        let (x, y) = (number(a, 0)?, number(a, 1)?);
        if x == 0.0 && y == 0.0 {
            return Err(FnError::Invalid("can't divide zero by zero or infinity by infinity"));
        }
        num(x / y)
    }),
    "element" => (n(2), |a| {
        let items = list(a, 0)?;
        let index = integer(a, 1)?;
        if items.is_empty() {
            return Err(FnError::Invalid("cannot use element function with an empty list"));
        }
        Ok(items[index.rem_euclid(items.len() as i64) as usize].clone())
    }),
    "equal" => (n(2), |a| Ok(Value::Bool(equal(&a[0], &a[1])))),
    "flatten" => (n(1), |a| {
        let mut out = Vec::new();
        flatten(list(a, 0)?, &mut out);
        Ok(Value::Array(out))
    }),
    "floor" => (n(1), |a| num(number(a, 0)?.floor())),
    "format" => (VARIADIC, |a| text(format(&string(a, 0)?, &a[1..])?)),
    "formatdate" => (n(2), |a| text(formatdate(&string(a, 0)?, &parse_rfc3339(&string(a, 1)?)?)?)),
    "formattimestamp" => (n(2), formattimestamp),
    "formatlist" => (VARIADIC, formatlist),
    "greaterthan" => (n(2), |a| Ok(Value::Bool(number(a, 0)? > number(a, 1)?))),
    "greaterthanorequalto" => (n(2), |a| Ok(Value::Bool(number(a, 0)? >= number(a, 1)?))),
    "hasindex" => (n(2), |a| Ok(Value::Bool(index(a).is_ok()))),
    "homedir" => (n(0), |_| Err(FnError::Refused("`homedir` names a folder of the importing machine, which a graph may not depend on: write the path"))),
    "indent" => (n(2), |a| {
        let spaces = usize::try_from(integer(a, 0)?).map_err(|_| FnError::OutOfRange { what: "the indent" })?;
        let s = string(a, 1)?;
        fits(s.matches('\n').count().saturating_mul(spaces).saturating_add(s.len()))?;
        text(s.replace('\n', &format!("\n{}", " ".repeat(spaces))))
    }),
    "index" => (n(2), index),
    "indexof" => (n(2), |a| {
        let items = list(a, 0)?;
        if items.is_empty() {
            return Err(FnError::Invalid("cannot search an empty list"));
        }
        items.iter().position(|v| equal(v, &a[1])).map(Value::from).ok_or(FnError::Invalid("item not found"))
    }),
    "int" => (n(1), |a| num(number(a, 0)?.trunc())),
    "join" => (VARIADIC, |a| {
        let sep = string(a, 0)?;
        if a.len() < 2 {
            return Err(FnError::Invalid("at least one list is required"));
        }
        let mut parts = Vec::new();
        for i in 1..a.len() {
            for v in list(a, i)? {
                if v.is_null() {
                    return Err(FnError::Invalid("a list given to `join` holds null"));
                }
                parts.push(string(std::slice::from_ref(v), 0)?);
            }
        }
        text(parts.join(&sep))
    }),
    "jsondecode" => (n(1), |a| Ok(from_json(serde_json::from_str(&string(a, 0)?)?))),
    "jsonencode" => (n(1), |a| text(json_text(a.first().unwrap_or(&Value::Null)))),
    "keys" => (n(1), |a| {
        let mut keys: Vec<&String> = object(a, 0)?.keys().collect();
        keys.sort();
        Ok(Value::Array(keys.into_iter().map(|k| Value::String(k.clone())).collect()))
    }),
    "length" => (n(1), |a| Ok(Value::from(match arg(a, 0)? {
        Value::Array(items) => items.len(),
        Value::Object(map) => map.len(),
        Value::String(s) => graphemes(s),
        other => return Err(FnError::Type { index: 1, expected: "a collection or string", found: kind(other) }),
    }))),
    "lessthan" => (n(2), |a| Ok(Value::Bool(number(a, 0)? < number(a, 1)?))),
    "lessthanorequalto" => (n(2), |a| Ok(Value::Bool(number(a, 0)? <= number(a, 1)?))),
    "log" => (n(2), |a| num(number(a, 0)?.ln() / number(a, 1)?.ln())),
    "lookup" => (n(3), |a| Ok(object(a, 0)?.get(&string(a, 1)?).cloned().unwrap_or_else(|| a[2].clone()))),
    "lower" => (n(1), |a| text(string(a, 0)?.to_lowercase())),
    "max" => (VARIADIC, |a| extreme(a, f64::max)),
    "md5" => (n(1), |a| text(hex::<md5::Md5>(&string(a, 0)?))),
    "merge" => (VARIADIC, |a| {
        let mut out: BTreeMap<String, Value> = BTreeMap::new();
        for (i, v) in a.iter().enumerate() {
            match v {
                Value::Null => {}
                Value::Object(map) => out.extend(map.iter().map(|(k, v)| (k.clone(), v.clone()))),
                other => return Err(FnError::Type { index: i + 1, expected: "a map or object", found: kind(other) }),
            }
        }
        Ok(Value::Object(out.into_iter().collect()))
    }),
    "min" => (VARIADIC, |a| extreme(a, f64::min)),
    "modulo" => (n(2), |a| {
        let (x, y) = (number(a, 0)?, number(a, 1)?);
        if y == 0.0 { num(x) } else { num(x % y) }
    }),
    "multiply" => (n(2), |a| num(number(a, 0)? * number(a, 1)?)),
    "negate" => (n(1), |a| num(-number(a, 0)?)),
    "not" => (n(1), |a| Ok(Value::Bool(!boolean(a, 0)?))),
    "notequal" => (n(2), |a| Ok(Value::Bool(!equal(&a[0], &a[1])))),
    "or" => (n(2), |a| Ok(Value::Bool(boolean(a, 0)? || boolean(a, 1)?))),
    "parseint" => (n(2), parseint),
    "pow" => (n(2), |a| num(number(a, 0)?.powf(number(a, 1)?))),
    "range" => (VARIADIC, range),
    "regex_replace" => (n(3), |a| {
        let re = regex::Regex::new(&string(a, 1)?)?;
        let (s, to) = (string(a, 0)?, string(a, 2)?);
        // Each replacement is at most the replacement text with every `$N` the whole string.
        let per = to.len().saturating_add(to.matches('$').count().saturating_mul(s.len()));
        fits(re.find_iter(&s).count().saturating_mul(per).saturating_add(s.len()))?;
        text(re.replace_all(&s, to.as_str()).into_owned())
    }),
    "regex" => (n(2), |a| {
        let re = regex::Regex::new(&string(a, 0)?)?;
        let s = string(a, 1)?;
        let captures = re.captures(&s).ok_or(FnError::NoMatch)?;
        captures_value(&re, &captures)
    }),
    "regexall" => (n(2), |a| {
        let re = regex::Regex::new(&string(a, 0)?)?;
        let s = string(a, 1)?;
        Ok(Value::Array(re.captures_iter(&s).map(|c| captures_value(&re, &c)).collect::<Result<_, _>>()?))
    }),
    "replace" => (n(3), |a| {
        let (s, from, to) = (string(a, 0)?, string(a, 1)?, string(a, 2)?);
        let count = if from.is_empty() { s.chars().count() + 1 } else { s.matches(from.as_str()).count() };
        fits(count.saturating_mul(to.len()).saturating_add(s.len()))?;
        text(s.replace(&from, &to))
    }),
    "reverse" => (n(1), |a| text(string(a, 0)?.graphemes(true).rev().collect::<String>())),
    "reverselist" => (n(1), |a| Ok(Value::Array(list(a, 0)?.iter().rev().cloned().collect()))),
    "rsadecrypt" => (n(2), |_| Err(FnError::Refused("`rsadecrypt` needs a private key, which an imported graph may not hold"))),
    "sanitize" => (n(1), |a| text(string(a, 0)?.chars().map(|c| if c.is_ascii_alphanumeric() || c == '_' || c == '-' { c } else { '_' }).collect::<String>())),
    "semvercmp" => (n(2), |a| Ok(Value::Bool(semver_check(&string(a, 0)?, &string(a, 1)?)?))),
    "sethaselement" => (n(2), |a| Ok(Value::Bool(list(a, 0)?.iter().any(|v| equal(v, &a[1]))))),
    "setintersection" => (VARIADIC, |a| sets(a, |sets| {
        let (first, rest) = sets.split_first().ok_or(FnError::Invalid("at least one set is required"))?;
        Ok(first.iter().filter(|v| rest.iter().all(|s| s.contains(v))).cloned().collect())
    })),
    "setproduct" => (VARIADIC, setproduct),
    "setsubtract" => (n(2), |a| sets(a, |sets| Ok(sets[0].iter().filter(|v| !sets[1].contains(v)).cloned().collect()))),
    "setsymmetricdifference" => (VARIADIC, |a| sets(a, |sets| {
        let all: Vec<Value> = sets.iter().flatten().cloned().collect();
        Ok(all.iter().filter(|v| sets.iter().filter(|s| s.contains(v)).count() % 2 == 1).cloned().collect())
    })),
    "setunion" => (VARIADIC, |a| sets(a, |sets| Ok(sets.iter().flatten().cloned().collect()))),
    "sha1" => (n(1), |a| text(hex::<sha1::Sha1>(&string(a, 0)?))),
    "sha256" => (n(1), |a| text(hex::<sha2::Sha256>(&string(a, 0)?))),
    "sha512" => (n(1), |a| text(hex::<sha2::Sha512>(&string(a, 0)?))),
    "signum" => (n(1), |a| {
        let x = number(a, 0)?;
        num(if x > 0.0 { 1.0 } else if x < 0.0 { -1.0 } else { 0.0 })
    }),
    "slice" => (n(3), |a| {
        let items = list(a, 0)?;
        let (start, end) = (integer(a, 1)?, integer(a, 2)?);
        if start < 0 {
            return Err(FnError::Invalid("the start index must not be less than zero"));
        }
        if end > items.len() as i64 {
            return Err(FnError::Invalid("the end index must not be greater than the length of the list"));
        }
        if start > end {
            return Err(FnError::Invalid("the start index must not be greater than the end index"));
        }
        Ok(Value::Array(items[start as usize..end as usize].to_vec()))
    }),
    "sort" => (n(1), |a| {
        let items = list(a, 0)?;
        let mut out = Vec::with_capacity(items.len());
        for v in items {
            if v.is_null() {
                return Err(FnError::Invalid("given list element is null; a null value cannot be sorted"));
            }
            out.push(string(std::slice::from_ref(v), 0)?);
        }
        out.sort();
        Ok(Value::Array(out.into_iter().map(Value::String).collect()))
    }),
    "split" => (n(2), |a| {
        let (sep, s) = (string(a, 0)?, string(a, 1)?);
        let parts: Vec<Value> = if sep.is_empty() {
            s.chars().map(|c| Value::String(c.to_string())).collect()
        } else {
            s.split(sep.as_str()).map(|p| Value::String(p.to_owned())).collect()
        };
        Ok(Value::Array(parts))
    }),
    "strlen" => (n(1), |a| Ok(Value::from(graphemes(&string(a, 0)?)))),
    "substr" => (n(3), |a| text(substr(&string(a, 0)?, integer(a, 1)?, integer(a, 2)?))),
    "subtract" => (n(2), |a| num(number(a, 0)? - number(a, 1)?)),
    "timeadd" => (n(2), |a| {
        let mut t = parse_rfc3339(&string(a, 0)?)?;
        t.nanos += go_duration(&string(a, 1)?)?;
        text(t.rfc3339())
    }),
    "timestamp" => (n(0), |_| text(Stamp::now().rfc3339())),
    "title" => (n(1), |a| {
        let mut prev_sep = true;
        text(string(a, 0)?.chars().map(|c| {
            let out = if prev_sep { c.to_uppercase().next().unwrap_or(c) } else { c };
            prev_sep = !(c.is_alphanumeric() || c == '_');
            out
        }).collect::<String>())
    }),
    "trim" => (n(2), |a| {
        let cut: Vec<char> = string(a, 1)?.chars().collect();
        text(string(a, 0)?.trim_matches(cut.as_slice()).to_owned())
    }),
    "trimprefix" => (n(2), |a| {
        let (s, p) = (string(a, 0)?, string(a, 1)?);
        text(s.strip_prefix(p.as_str()).unwrap_or(&s).to_owned())
    }),
    "trimspace" => (n(1), |a| text(string(a, 0)?.trim().to_owned())),
    "trimsuffix" => (n(2), |a| {
        let (s, p) = (string(a, 0)?, string(a, 1)?);
        text(s.strip_suffix(p.as_str()).unwrap_or(&s).to_owned())
    }),
    "unixtimestampparse" => (n(1), unixtimestampparse),
    "upper" => (n(1), |a| text(string(a, 0)?.to_uppercase())),
    "urlencode" => (n(1), |a| text(query_escape(&string(a, 0)?))),
    "uuidv4" => (n(0), |_| {
        let mut b = [0u8; 16];
        getrandom::fill(&mut b).map_err(FnError::Random)?;
        b[6] = (b[6] & 0x0f) | 0x40;
        b[8] = (b[8] & 0x3f) | 0x80;
        text(uuid_text(&b))
    }),
    "uuidv5" => (n(2), uuidv5),
    "values" => (n(1), |a| {
        let mut entries: Vec<(&String, &Value)> = object(a, 0)?.iter().collect();
        entries.sort_by(|x, y| x.0.cmp(y.0));
        Ok(Value::Array(entries.into_iter().map(|(_, v)| v.clone()).collect()))
    }),
    "zipmap" => (n(2), |a| {
        let (keys, values) = (list(a, 0)?, list(a, 1)?);
        if keys.len() != values.len() {
            return Err(FnError::Invalid("number of keys and number of values must be equal"));
        }
        let mut out = hcl::Map::new();
        for (k, v) in keys.iter().zip(values) {
            out.insert(string(std::slice::from_ref(k), 0)?, v.clone());
        }
        Ok(Value::Object(out))
    }),
}

// ---------------------------------------------------------------------------------------------
// Collections
// ---------------------------------------------------------------------------------------------

fn equal(a: &Value, b: &Value) -> bool {
    a == b
}

fn flatten(items: &[Value], out: &mut Vec<Value>) {
    for v in items {
        match v {
            Value::Array(inner) => flatten(inner, out),
            other => out.push(other.clone()),
        }
    }
}

fn chunklist(a: &[Value]) -> FnResult {
    let items = list(a, 0)?;
    let size = integer(a, 1)?;
    if size < 0 {
        return Err(FnError::Invalid("the size argument must be positive"));
    }
    if size == 0 {
        return Ok(Value::Array(vec![Value::Array(items.clone())]));
    }
    Ok(Value::Array(items.chunks(size as usize).map(|c| Value::Array(c.to_vec())).collect()))
}

fn index(a: &[Value]) -> FnResult {
    match arg(a, 0)? {
        Value::Array(items) => {
            let i = integer(a, 1)?;
            usize::try_from(i).ok().and_then(|i| items.get(i)).cloned().ok_or(FnError::NoKey)
        }
        Value::Object(map) => map.get(&string(a, 1)?).cloned().ok_or(FnError::NoKey),
        other => Err(FnError::Type { index: 1, expected: "a list or map", found: kind(other) }),
    }
}

fn extreme(a: &[Value], pick: fn(f64, f64) -> f64) -> FnResult {
    if a.is_empty() {
        return Err(FnError::Invalid("must pass at least one number"));
    }
    let mut best = number(a, 0)?;
    for i in 1..a.len() {
        best = pick(best, number(a, i)?);
    }
    num(best)
}

fn range(a: &[Value]) -> FnResult {
    let (start, end, step) = match a.len() {
        1 => {
            let end = number(a, 0)?;
            (0.0, end, if end < 0.0 { -1.0 } else { 1.0 })
        }
        2 => {
            let (start, end) = (number(a, 0)?, number(a, 1)?);
            (start, end, if end < start { -1.0 } else { 1.0 })
        }
        3 => (number(a, 0)?, number(a, 1)?, number(a, 2)?),
        _ => return Err(FnError::Invalid("must have one, two, or three arguments")),
    };
    if step == 0.0 {
        return Err(FnError::Invalid("step must not be zero"));
    }
    let down = step < 0.0;
    if down && end > start {
        return Err(FnError::Invalid("end must be less than start when step is negative"));
    }
    if !down && end < start {
        return Err(FnError::Invalid("end must be greater than start when step is positive"));
    }
    let mut out = Vec::new();
    let mut x = start;
    while if down { x > end } else { x < end } {
        if out.len() >= 1024 {
            return Err(FnError::Invalid(
                "more than 1024 values were generated; either decrease the difference between start and end or use a smaller step",
            ));
        }
        out.push(num(x)?);
        x += step;
    }
    Ok(Value::Array(out))
}

/// Applies `op` to the arguments as sets (each sorted and deduplicated); the result is a set.
/// A set operation: the sets in, the elements out.
type SetOp = fn(&[Vec<Value>]) -> Result<Vec<Value>, FnError>;

fn sets(a: &[Value], op: SetOp) -> FnResult {
    if a.is_empty() {
        return Err(FnError::Invalid("at least one set is required"));
    }
    let sets = (0..a.len()).map(|i| list(a, i).map(|l| set_of(l.clone()))).collect::<Result<Vec<_>, _>>()?;
    Ok(Value::Array(set_of(op(&sets)?)))
}

fn setproduct(a: &[Value]) -> FnResult {
    if a.len() < 2 {
        return Err(FnError::Invalid("at least two arguments are required"));
    }
    let lists = (0..a.len()).map(|i| list(a, i)).collect::<Result<Vec<_>, _>>()?;
    let total = lists.iter().try_fold(1usize, |n, l| n.checked_mul(l.len()));
    if total.is_none_or(|t| t > hephy_dsl::limits::MAX_MATRIX_COPIES) {
        return Err(FnError::OutOfRange { what: "the product's size" });
    }
    let mut out: Vec<Vec<Value>> = vec![Vec::new()];
    for l in &lists {
        out = out
            .iter()
            .flat_map(|prefix| l.iter().map(move |v| [prefix.as_slice(), std::slice::from_ref(v)].concat()))
            .collect();
    }
    Ok(Value::Array(out.into_iter().map(Value::Array).collect()))
}

fn parseint(a: &[Value]) -> FnResult {
    let s = string(a, 0)?;
    let base = integer(a, 1)?;
    if !(2..=62).contains(&base) {
        return Err(FnError::Invalid("base must be a whole number between 2 and 62 inclusive"));
    }
    let (negative, digits) = match s.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, s.strip_prefix('+').unwrap_or(&s)),
    };
    if digits.is_empty() {
        return Err(FnError::NotNumber { index: 1, text: s.clone() });
    }
    let mut value: i128 = 0;
    for c in digits.chars() {
        let d = match c {
            '0'..='9' => c as i128 - '0' as i128,
            'a'..='z' => c as i128 - 'a' as i128 + 10,
            'A'..='Z' if base <= 36 => c as i128 - 'A' as i128 + 10,
            'A'..='Z' => c as i128 - 'A' as i128 + 36,
            _ => return Err(FnError::NotNumber { index: 1, text: s.clone() }),
        };
        if d >= base as i128 {
            return Err(FnError::NotNumber { index: 1, text: s.clone() });
        }
        value = value
            .checked_mul(base as i128)
            .and_then(|v| v.checked_add(d))
            .ok_or(FnError::OutOfRange { what: "the number" })?;
    }
    let value = if negative { -value } else { value };
    if let Ok(i) = i64::try_from(value) {
        Ok(Value::from(i))
    } else if let Ok(u) = u64::try_from(value) {
        Ok(Value::from(u))
    } else {
        Err(FnError::OutOfRange { what: "the number" })
    }
}

// ---------------------------------------------------------------------------------------------
// Strings
// ---------------------------------------------------------------------------------------------

fn base64decode(a: &[Value]) -> FnResult {
    use base64::Engine as _;
    let bytes = base64::engine::general_purpose::STANDARD.decode(string(a, 0)?)?;
    text(String::from_utf8(bytes).map_err(|_| FnError::Utf8)?)
}

fn hex<D: sha2::Digest>(s: &str) -> String {
    D::digest(s.as_bytes()).iter().map(|b| format!("{b:02x}")).collect()
}

/// go-cty's `substr`: offsets and lengths in grapheme clusters; a negative offset counts from
/// the end, a negative length takes the rest.
fn substr(s: &str, offset: i64, length: i64) -> String {
    let g: Vec<&str> = s.graphemes(true).collect();
    let mut offset = offset;
    if offset < 0 {
        offset += g.len() as i64;
    } else if length == 0 {
        return String::new();
    }
    let start = offset.max(0) as usize;
    if start > g.len() {
        return String::new();
    }
    let rest = &g[start..];
    let take = if length <= 0 { rest.len() } else { (length as usize).min(rest.len()) };
    rest[..take].concat()
}

/// Go's `path.Base`.
fn go_path_base(p: &str) -> String {
    if p.is_empty() {
        return ".".to_owned();
    }
    let trimmed = p.trim_end_matches('/');
    if trimmed.is_empty() {
        return "/".to_owned();
    }
    trimmed.rsplit('/').next().unwrap_or(trimmed).to_owned()
}

/// Go's `path.Dir`: everything before the last `/`, cleaned.
fn go_path_dir(p: &str) -> String {
    let dir = match p.rfind('/') {
        Some(i) => &p[..=i],
        None => "",
    };
    go_path_clean(dir)
}

/// Go's `path.Clean`.
fn go_path_clean(p: &str) -> String {
    if p.is_empty() {
        return ".".to_owned();
    }
    let rooted = p.starts_with('/');
    let mut parts: Vec<&str> = Vec::new();
    for part in p.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                if parts.last().is_some_and(|l| *l != "..") {
                    parts.pop();
                } else if !rooted {
                    parts.push("..");
                }
            }
            other => parts.push(other),
        }
    }
    let joined = parts.join("/");
    match (rooted, joined.is_empty()) {
        (true, _) => format!("/{joined}"),
        (false, true) => ".".to_owned(),
        (false, false) => joined,
    }
}

/// Go's `url.QueryEscape`.
fn query_escape(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => out.push(b as char),
            b' ' => out.push('+'),
            other => out.push_str(&format!("%{other:02X}")),
        }
    }
    out
}

/// `regex`'s result for one match: the match without capture groups, a list of the groups'
/// texts, or an object of the named groups' texts (null where a group took no part).
fn captures_value(re: &regex::Regex, captures: &regex::Captures<'_>) -> FnResult {
    let names: Vec<Option<&str>> = re.capture_names().skip(1).collect();
    let text_of =
        |m: Option<regex::Match<'_>>| m.map_or(Value::Null, |m| Value::String(m.as_str().to_owned()));
    if names.is_empty() {
        return Ok(text_of(captures.get(0)));
    }
    if names.iter().all(Option::is_some) {
        let mut out = hcl::Map::new();
        for name in names.into_iter().flatten() {
            out.insert(name.to_owned(), text_of(captures.name(name)));
        }
        return Ok(Value::Object(out));
    }
    if names.iter().any(Option::is_some) {
        return Err(FnError::MixedCaptures);
    }
    Ok(Value::Array((1..=names.len()).map(|i| text_of(captures.get(i))).collect()))
}

/// A value as JSON, as Go's `encoding/json` writes it (keys sorted, `<`, `>`, `&` escaped).
fn json_text(value: &Value) -> String {
    fn to_json(value: &Value) -> serde_json::Value {
        match value {
            Value::Null => serde_json::Value::Null,
            Value::Bool(b) => serde_json::Value::Bool(*b),
            Value::Number(n) => serde_json::from_str(&n.to_string()).unwrap_or(serde_json::Value::Null),
            Value::String(s) => serde_json::Value::String(s.clone()),
            Value::Array(items) => serde_json::Value::Array(items.iter().map(to_json).collect()),
            Value::Object(map) => {
                let sorted: BTreeMap<&String, &Value> = map.iter().collect();
                serde_json::Value::Object(sorted.into_iter().map(|(k, v)| (k.clone(), to_json(v))).collect())
            }
        }
    }
    serde_json::to_string(&to_json(value))
        .unwrap_or_default()
        .replace('<', "\\u003c")
        .replace('>', "\\u003e")
        .replace('&', "\\u0026")
        .replace('\u{2028}', "\\u2028")
        .replace('\u{2029}', "\\u2029")
}

fn from_json(json: serde_json::Value) -> Value {
    match json {
        serde_json::Value::Null => Value::Null,
        serde_json::Value::Bool(b) => Value::Bool(b),
        serde_json::Value::Number(n) => match (n.as_i64(), n.as_u64(), n.as_f64()) {
            (Some(i), _, _) => Value::from(i),
            (_, Some(u), _) => Value::from(u),
            (_, _, Some(f)) => Number::from_f64(f).map_or(Value::Null, Value::Number),
            _ => Value::Null,
        },
        serde_json::Value::String(s) => Value::String(s),
        serde_json::Value::Array(items) => Value::Array(items.into_iter().map(from_json).collect()),
        serde_json::Value::Object(map) => {
            Value::Object(map.into_iter().map(|(k, v)| (k, from_json(v))).collect())
        }
    }
}

/// go-cty's `csvdecode`: the first record names the fields; each further record is an object of
/// strings, and must have as many fields (Go's `encoding/csv`, strict quotes).
fn csvdecode(a: &[Value]) -> FnResult {
    let input = string(a, 0)?;
    let mut records: Vec<Vec<String>> = Vec::new();
    let mut chars = input.chars().peekable();
    let mut line = 1;
    while chars.peek().is_some() {
        // Blank lines are skipped.
        if matches!(chars.peek(), Some('\n')) {
            chars.next();
            line += 1;
            continue;
        }
        if matches!(chars.peek(), Some('\r')) {
            chars.next();
            continue;
        }
        let mut record = Vec::new();
        loop {
            let mut field = String::new();
            if chars.peek() == Some(&'"') {
                chars.next();
                loop {
                    match chars.next() {
                        None => {
                            return Err(FnError::Csv {
                                line,
                                problem: "extraneous or missing \" in quoted-field",
                            });
                        }
                        Some('"') if chars.peek() == Some(&'"') => {
                            chars.next();
                            field.push('"');
                        }
                        Some('"') => break,
                        Some(c) => {
                            if c == '\n' {
                                line += 1;
                            }
                            field.push(c);
                        }
                    }
                }
                if !matches!(chars.peek(), None | Some(',') | Some('\n') | Some('\r')) {
                    return Err(FnError::Csv { line, problem: "extraneous or missing \" in quoted-field" });
                }
            } else {
                while let Some(&c) = chars.peek() {
                    if c == ',' || c == '\n' || c == '\r' {
                        break;
                    }
                    if c == '"' {
                        return Err(FnError::Csv { line, problem: "bare \" in non-quoted-field" });
                    }
                    field.push(c);
                    chars.next();
                }
            }
            record.push(field);
            match chars.next() {
                Some(',') => continue,
                Some('\r') => {
                    if chars.peek() == Some(&'\n') {
                        chars.next();
                    }
                    line += 1;
                    break;
                }
                Some('\n') => {
                    line += 1;
                    break;
                }
                _ => break,
            }
        }
        if let Some(first) = records.first()
            && first.len() != record.len()
        {
            return Err(FnError::Csv { line: line - 1, problem: "wrong number of fields" });
        }
        records.push(record);
    }
    let Some((header, rows)) = records.split_first() else {
        return Err(FnError::Invalid("missing header line"));
    };
    Ok(Value::Array(
        rows.iter()
            .map(|row| {
                Value::Object(
                    header.iter().cloned().zip(row.iter().map(|f| Value::String(f.clone()))).collect(),
                )
            })
            .collect(),
    ))
}

// ---------------------------------------------------------------------------------------------
// format and formatlist (go-cty's format.go: Go's verbs on cty values)
// ---------------------------------------------------------------------------------------------

fn format(fmt: &str, args: &[Value]) -> Result<String, FnError> {
    let chars: Vec<char> = fmt.chars().collect();
    let mut out = String::new();
    let mut i = 0;
    let mut next = 0usize;
    let mut used = 0usize;
    while i < chars.len() {
        if chars[i] != '%' {
            out.push(chars[i]);
            i += 1;
            continue;
        }
        i += 1;
        if chars.get(i) == Some(&'%') {
            out.push('%');
            i += 1;
            continue;
        }
        let (mut plus, mut minus, mut sharp, mut space, mut zero) = (false, false, false, false, false);
        while let Some(&c) = chars.get(i) {
            match c {
                '+' => plus = true,
                '-' => minus = true,
                '#' => sharp = true,
                ' ' => space = true,
                '0' => zero = true,
                _ => break,
            }
            i += 1;
        }
        let digits = |i: &mut usize| {
            let start = *i;
            while chars.get(*i).is_some_and(char::is_ascii_digit) {
                *i += 1;
            }
            chars[start..*i].iter().collect::<String>().parse::<usize>().ok()
        };
        if chars.get(i) == Some(&'[') {
            i += 1;
            let n = digits(&mut i).ok_or(FnError::Format("a `[` is not followed by an argument number"))?;
            if chars.get(i) != Some(&']') || n == 0 {
                return Err(FnError::Format("an argument index must be `[N]`, N from 1"));
            }
            i += 1;
            next = n - 1;
        }
        let width = digits(&mut i).unwrap_or(0).min(1 << 16);
        let precision = if chars.get(i) == Some(&'.') {
            i += 1;
            Some(digits(&mut i).unwrap_or(0).min(1 << 10))
        } else {
            None
        };
        if chars.get(i) == Some(&'[') {
            i += 1;
            let n = digits(&mut i).ok_or(FnError::Format("a `[` is not followed by an argument number"))?;
            if chars.get(i) != Some(&']') || n == 0 {
                return Err(FnError::Format("an argument index must be `[N]`, N from 1"));
            }
            i += 1;
            next = n - 1;
        }
        let Some(&verb) = chars.get(i) else {
            return Err(FnError::Format("the format string ends inside a verb"));
        };
        i += 1;
        let value = args.get(next).ok_or(FnError::Format("not enough arguments for the verbs"))?;
        next += 1;
        used = used.max(next);
        let (body, numeric) = format_one(verb, value, plus, sharp, space, precision)?;
        fits(out.len().saturating_add(body.len()).saturating_add(width))?;
        let len = body.chars().count();
        if len >= width {
            out.push_str(&body);
        } else if minus {
            out.push_str(&body);
            out.extend(std::iter::repeat_n(' ', width - len));
        } else if zero && numeric {
            let (sign, digits) = match body.chars().next() {
                Some(c @ ('+' | '-' | ' ')) => (Some(c), &body[1..]),
                _ => (None, body.as_str()),
            };
            out.extend(sign);
            out.extend(std::iter::repeat_n('0', width - len));
            out.push_str(digits);
        } else {
            out.extend(std::iter::repeat_n(' ', width - len));
            out.push_str(&body);
        }
    }
    if used < args.len() {
        return Err(FnError::Format("too many arguments for the verbs"));
    }
    Ok(out)
}

/// One verb's text, and whether it is a number (padded with zeros by the `0` flag).
fn format_one(
    verb: char,
    value: &Value,
    plus: bool,
    sharp: bool,
    space: bool,
    precision: Option<usize>,
) -> Result<(String, bool), FnError> {
    let one = std::slice::from_ref(value);
    if value.is_null() && verb != 'v' {
        return Err(FnError::Format("null value cannot be formatted"));
    }
    let signed = |s: String, negative: bool| {
        if negative {
            s
        } else if plus {
            format!("+{s}")
        } else if space {
            format!(" {s}")
        } else {
            s
        }
    };
    Ok(match verb {
        'v' if sharp => (json_text(value), false),
        'v' => match value {
            Value::Null => ("null".to_owned(), false),
            Value::String(s) => (s.clone(), false),
            Value::Bool(b) => (b.to_string(), false),
            Value::Number(n) => (signed(n.to_string(), n.as_f64().is_some_and(|f| f < 0.0)), true),
            other => (json_text(other), false),
        },
        't' => (boolean(one, 0)?.to_string(), false),
        's' => {
            let s = string(one, 0)?;
            (
                match precision {
                    Some(p) => s.chars().take(p).collect(),
                    None => s,
                },
                false,
            )
        }
        'q' => (json_text(&Value::String(string(one, 0)?)), false),
        'd' | 'b' | 'o' | 'x' | 'X' => {
            let f = number(one, 0)?;
            if f.fract() != 0.0 {
                return Err(FnError::Format("an integer is required"));
            }
            let i = f as i128;
            let magnitude = i.unsigned_abs();
            let digits = match verb {
                'd' => magnitude.to_string(),
                'b' => format!("{}{magnitude:b}", if sharp { "0b" } else { "" }),
                'o' => format!("{}{magnitude:o}", if sharp { "0" } else { "" }),
                'x' => format!("{}{magnitude:x}", if sharp { "0x" } else { "" }),
                _ => format!("{}{magnitude:X}", if sharp { "0X" } else { "" }),
            };
            (signed(if i < 0 { format!("-{digits}") } else { digits }, i < 0), true)
        }
        'e' | 'E' | 'f' | 'F' | 'g' | 'G' => {
            let f = number(one, 0)?;
            let body = match verb {
                'f' | 'F' => format!("{f:.*}", precision.unwrap_or(6)),
                'e' => go_exp(f, precision.unwrap_or(6)),
                'E' => go_exp(f, precision.unwrap_or(6)).to_uppercase(),
                'g' => go_g(f, precision),
                _ => go_g(f, precision).to_uppercase(),
            };
            (signed(body, f < 0.0), true)
        }
        _ => return Err(FnError::Format("unsupported format verb")),
    })
}

/// Go's `%e`: `1.500000e+00`.
fn go_exp(f: f64, precision: usize) -> String {
    let s = format!("{f:.precision$e}");
    let (mantissa, exp) = s.split_once('e').unwrap_or((&s, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    format!("{mantissa}e{}{:02}", if exp < 0 { '-' } else { '+' }, exp.abs())
}

/// Go's `%g`: the shortest exact digits, in exponent form when the exponent is below -4 or at
/// least the precision (6 for the shortest).
fn go_g(f: f64, precision: Option<usize>) -> String {
    if f == 0.0 {
        return "0".to_owned();
    }
    let shortest = format!("{f:e}");
    let (mantissa, exp) = shortest.split_once('e').unwrap_or((&shortest, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let nd = mantissa.chars().filter(char::is_ascii_digit).count();
    let (digits, eprec) = match precision {
        None => (nd, 6),
        Some(p) => (p.max(1), p.max(1) as i32),
    };
    if exp < -4 || exp >= eprec {
        go_exp(f, digits - 1)
    } else {
        let decimals = (digits as i32 - 1 - exp).max(0) as usize;
        let s = format!("{f:.decimals$}");
        if precision.is_none() && s.contains('.') {
            s.trim_end_matches('0').trim_end_matches('.').to_owned()
        } else {
            s
        }
    }
}

fn formatlist(a: &[Value]) -> FnResult {
    let fmt = string(a, 0)?;
    let args = &a[1..];
    let mut len: Option<usize> = None;
    for v in args {
        if let Value::Array(items) = v {
            match len {
                None => len = Some(items.len()),
                Some(l) if l != items.len() => {
                    return Err(FnError::Invalid("the lists given to `formatlist` are of different lengths"));
                }
                _ => {}
            }
        }
    }
    let mut out = Vec::new();
    for i in 0..len.unwrap_or(1) {
        let row: Vec<Value> = args
            .iter()
            .map(|v| match v {
                Value::Array(items) => items[i].clone(),
                other => other.clone(),
            })
            .collect();
        out.push(Value::String(format(&fmt, &row)?));
    }
    Ok(Value::Array(out))
}

// ---------------------------------------------------------------------------------------------
// Time (go-cty's datetime.go and buildx's timestamp functions)
// ---------------------------------------------------------------------------------------------

/// An instant and the UTC offset it was written with.
#[derive(Debug, Clone, Copy)]
struct Stamp {
    /// Nanoseconds since 1970-01-01T00:00:00Z.
    nanos: i128,
    /// Seconds east of UTC.
    offset: i64,
}

const MONTHS: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];
const WEEKDAYS: [&str; 7] = ["Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday"];

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (if m <= 2 { yoe + era * 400 + 1 } else { yoe + era * 400 }, m, d)
}

/// The local fields of a [`Stamp`].
struct Fields {
    year: i64,
    month: i64,
    day: i64,
    hour: i64,
    minute: i64,
    second: i64,
    /// 0 for Sunday.
    weekday: i64,
    /// 1 for 1 January.
    year_day: i64,
    days: i64,
}

impl Stamp {
    fn now() -> Stamp {
        let nanos = match std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH) {
            Ok(d) => d.as_nanos() as i128,
            Err(e) => -(e.duration().as_nanos() as i128),
        };
        // Whole seconds, as Go's RFC 3339 writes them.
        Stamp { nanos: nanos - nanos.rem_euclid(1_000_000_000), offset: 0 }
    }

    fn fields(&self) -> Fields {
        let local = self.nanos.div_euclid(1_000_000_000) as i64 + self.offset;
        let days = local.div_euclid(86_400);
        let secs = local.rem_euclid(86_400);
        let (year, month, day) = civil_from_days(days);
        Fields {
            year,
            month,
            day,
            hour: secs / 3600,
            minute: secs / 60 % 60,
            second: secs % 60,
            weekday: (days + 4).rem_euclid(7),
            year_day: days - days_from_civil(year, 1, 1) + 1,
            days,
        }
    }

    /// `-07:00`, or `Z` when `z` and the offset is zero.
    fn zone(&self, colon: bool, z: bool) -> String {
        if z && self.offset == 0 {
            return "Z".to_owned();
        }
        let sign = if self.offset < 0 { '-' } else { '+' };
        let (h, m) = (self.offset.abs() / 3600, self.offset.abs() / 60 % 60);
        if colon { format!("{sign}{h:02}:{m:02}") } else { format!("{sign}{h:02}{m:02}") }
    }

    /// Go's `time.RFC3339` (whole seconds).
    fn rfc3339(&self) -> String {
        let f = self.fields();
        format!(
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}{}",
            f.year,
            f.month,
            f.day,
            f.hour,
            f.minute,
            f.second,
            self.zone(true, true)
        )
    }
}

/// A strict RFC 3339 timestamp, as go-cty reads it.
fn parse_rfc3339(s: &str) -> Result<Stamp, FnError> {
    let bad = || FnError::Timestamp(s.to_owned());
    let b = s.as_bytes();
    let digits = |from: usize, len: usize| -> Result<i64, FnError> {
        let part = b.get(from..from + len).ok_or_else(bad)?;
        if !part.iter().all(u8::is_ascii_digit) {
            return Err(bad());
        }
        Ok(part.iter().fold(0i64, |n, d| n * 10 + i64::from(d - b'0')))
    };
    let expect = |at: usize, c: u8| if b.get(at) == Some(&c) { Ok(()) } else { Err(bad()) };
    let year = digits(0, 4)?;
    expect(4, b'-')?;
    let month = digits(5, 2)?;
    expect(7, b'-')?;
    let day = digits(8, 2)?;
    expect(10, b'T')?;
    let hour = digits(11, 2)?;
    expect(13, b':')?;
    let minute = digits(14, 2)?;
    expect(16, b':')?;
    let second = digits(17, 2)?;
    let mut at = 19;
    let mut frac_nanos: i128 = 0;
    if b.get(at) == Some(&b'.') {
        at += 1;
        let start = at;
        while b.get(at).is_some_and(u8::is_ascii_digit) {
            at += 1;
        }
        if at == start {
            return Err(bad());
        }
        let frac = &s[start..at.min(start + 9)];
        frac_nanos = frac.parse::<i128>().map_err(|_| bad())? * 10i128.pow(9 - frac.len() as u32);
    }
    let offset = match b.get(at) {
        Some(b'Z') if at + 1 == b.len() => 0,
        Some(sign @ (b'+' | b'-')) if at + 6 == b.len() => {
            let (h, m) = (digits(at + 1, 2)?, digits(at + 4, 2)?);
            expect(at + 3, b':')?;
            if h >= 24 || m >= 60 {
                return Err(bad());
            }
            let off = h * 3600 + m * 60;
            if *sign == b'-' { -off } else { off }
        }
        _ => return Err(bad()),
    };
    let month_days = [
        31,
        if year % 4 == 0 && (year % 100 != 0 || year % 400 == 0) { 29 } else { 28 },
        31,
        30,
        31,
        30,
        31,
        31,
        30,
        31,
        30,
        31,
    ];
    if !(1..=12).contains(&month)
        || day < 1
        || day > month_days[(month - 1) as usize]
        || hour > 23
        || minute > 59
        || second > 59
    {
        return Err(bad());
    }
    let local = days_from_civil(year, month, day) * 86_400 + hour * 3600 + minute * 60 + second;
    Ok(Stamp { nanos: i128::from(local - offset) * 1_000_000_000 + frac_nanos, offset })
}

/// go-cty's `formatdate`.
fn formatdate(format: &str, t: &Stamp) -> Result<String, FnError> {
    let f = t.fields();
    let mut out = String::new();
    let chars: Vec<char> = format.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c == '\'' {
            // A quoted literal; `''` is a quote.
            if chars.get(i + 1) == Some(&'\'') {
                out.push('\'');
                i += 2;
                continue;
            }
            let mut j = i + 1;
            loop {
                match chars.get(j) {
                    None => return Err(FnError::DateLiteral),
                    Some('\'') if chars.get(j + 1) == Some(&'\'') => {
                        out.push('\'');
                        j += 2;
                    }
                    Some('\'') => break,
                    Some(&other) => {
                        out.push(other);
                        j += 1;
                    }
                }
            }
            i = j + 1;
            continue;
        }
        if !c.is_ascii_alphabetic() {
            out.push(c);
            i += 1;
            continue;
        }
        let mut j = i;
        while chars.get(j) == Some(&c) {
            j += 1;
        }
        let len = j - i;
        let verb: String = chars[i..j].iter().collect();
        i = j;
        let bad = || FnError::DateVerb(verb.clone());
        let two = |n: i64| format!("{n:02}");
        match (c, len) {
            ('Y', 2) => out.push_str(&two(f.year.rem_euclid(100))),
            ('Y', 4) => out.push_str(&format!("{:04}", f.year)),
            ('M', 1) => out.push_str(&f.month.to_string()),
            ('M', 2) => out.push_str(&two(f.month)),
            ('M', 3) => out.push_str(&MONTHS[(f.month - 1) as usize][..3]),
            ('M', 4) => out.push_str(MONTHS[(f.month - 1) as usize]),
            ('D', 1) => out.push_str(&f.day.to_string()),
            ('D', 2) => out.push_str(&two(f.day)),
            ('E', 3) => out.push_str(&WEEKDAYS[f.weekday as usize][..3]),
            ('E', 4) => out.push_str(WEEKDAYS[f.weekday as usize]),
            ('h', 1) => out.push_str(&f.hour.to_string()),
            ('h', 2) => out.push_str(&two(f.hour)),
            ('H', 1 | 2) => {
                let h = if f.hour % 12 == 0 { 12 } else { f.hour % 12 };
                out.push_str(&if len == 1 { h.to_string() } else { two(h) });
            }
            ('A', 2) => out.push_str(if f.hour < 12 { "AM" } else { "PM" }),
            ('a', 2) => out.push_str(if f.hour < 12 { "am" } else { "pm" }),
            ('m', 1) => out.push_str(&f.minute.to_string()),
            ('m', 2) => out.push_str(&two(f.minute)),
            ('s', 1) => out.push_str(&f.second.to_string()),
            ('s', 2) => out.push_str(&two(f.second)),
            ('Z', 1) => out.push_str(&t.zone(true, true)),
            ('Z', 3) => {
                let z = t.zone(false, false);
                out.push_str(if z == "+0000" { "UTC" } else { &z });
            }
            ('Z', 4) => out.push_str(&t.zone(false, false)),
            ('Z', 5) => out.push_str(&t.zone(true, false)),
            _ => return Err(bad()),
        }
    }
    Ok(out)
}

/// A unix timestamp (whole seconds) as a UTC [`Stamp`].
fn unix_stamp(a: &[Value], index: usize) -> Result<Stamp, FnError> {
    let secs = integer(a, index)?;
    Ok(Stamp { nanos: i128::from(secs) * 1_000_000_000, offset: 0 })
}

/// buildx's `formattimestamp`: an RFC 3339 string or a unix timestamp; `X` is unix seconds.
fn formattimestamp(a: &[Value]) -> FnResult {
    let format = string(a, 0)?;
    let t = match arg(a, 1)? {
        Value::String(s) => parse_rfc3339(s)?,
        Value::Number(_) => unix_stamp(a, 1)?,
        other => {
            return Err(FnError::Type {
                index: 2,
                expected: "a string timestamp or a unix timestamp number",
                found: kind(other),
            });
        }
    };
    if format == "X" {
        return text(t.nanos.div_euclid(1_000_000_000).to_string());
    }
    text(formatdate(&format, &t)?)
}

/// buildx's `unixtimestampparse`.
fn unixtimestampparse(a: &[Value]) -> FnResult {
    let t = unix_stamp(a, 0)?;
    let f = t.fields();
    // ISO 8601 week: the week (from Monday) of the year that holds its Thursday.
    let monday_based = (f.weekday + 6) % 7;
    let thursday = f.days - monday_based + 3;
    let (iso_year, _, _) = civil_from_days(thursday);
    let iso_week = (thursday - days_from_civil(iso_year, 1, 1)) / 7 + 1;
    let mut out = hcl::Map::new();
    for (k, v) in [
        ("year", Value::from(f.year)),
        ("year_day", Value::from(f.year_day)),
        ("day", Value::from(f.day)),
        ("month", Value::from(f.month)),
        ("month_name", Value::from(MONTHS[(f.month - 1) as usize])),
        ("weekday", Value::from(f.weekday)),
        ("weekday_name", Value::from(WEEKDAYS[f.weekday as usize])),
        ("hour", Value::from(f.hour)),
        ("minute", Value::from(f.minute)),
        ("second", Value::from(f.second)),
        ("rfc3339", Value::from(t.rfc3339())),
        ("iso_year", Value::from(iso_year)),
        ("iso_week", Value::from(iso_week)),
    ] {
        out.insert(k.to_owned(), v);
    }
    Ok(Value::Object(out))
}

/// Go's `time.ParseDuration`, in nanoseconds.
fn go_duration(s: &str) -> Result<i128, FnError> {
    let bad = || FnError::Duration(s.to_owned());
    let (negative, mut rest) = match s.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, s.strip_prefix('+').unwrap_or(s)),
    };
    if rest == "0" {
        return Ok(0);
    }
    if rest.is_empty() {
        return Err(bad());
    }
    let mut total: f64 = 0.0;
    while !rest.is_empty() {
        let end = rest.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(rest.len());
        let number = &rest[..end];
        if number.is_empty() || number == "." {
            return Err(bad());
        }
        let value: f64 = number.parse().map_err(|_| bad())?;
        rest = &rest[end..];
        let unit_end = rest.find(|c: char| c.is_ascii_digit() || c == '.').unwrap_or(rest.len());
        let unit = match &rest[..unit_end] {
            "ns" => 1.0,
            "us" | "µs" | "μs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            _ => return Err(bad()),
        };
        rest = &rest[unit_end..];
        total += value * unit;
    }
    if total > 9.2e18 {
        return Err(bad());
    }
    Ok(if negative { -(total as i128) } else { total as i128 })
}

// ---------------------------------------------------------------------------------------------
// UUIDs
// ---------------------------------------------------------------------------------------------

fn uuid_text(b: &[u8; 16]) -> String {
    let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!("{}-{}-{}-{}-{}", &h[..8], &h[8..12], &h[12..16], &h[16..20], &h[20..])
}

fn parse_uuid(s: &str) -> Option<[u8; 16]> {
    let hex: String = s.chars().filter(|c| *c != '-').collect();
    if hex.len() != 32 || s.len() != 36 {
        return None;
    }
    let mut out = [0u8; 16];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(hex.get(i * 2..i * 2 + 2)?, 16).ok()?;
    }
    Some(out)
}

/// go-cty-funcs' `uuidv5(namespace, name)`: SHA-1 of the namespace's bytes and the name.
fn uuidv5(a: &[Value]) -> FnResult {
    use sha1::Digest as _;
    let namespace = string(a, 0)?;
    let ns = match namespace.as_str() {
        "dns" => "6ba7b810-9dad-11d1-80b4-00c04fd430c8",
        "url" => "6ba7b811-9dad-11d1-80b4-00c04fd430c8",
        "oid" => "6ba7b812-9dad-11d1-80b4-00c04fd430c8",
        "x500" => "6ba7b814-9dad-11d1-80b4-00c04fd430c8",
        other => other,
    };
    let ns = parse_uuid(ns).ok_or_else(|| FnError::Uuid(namespace.clone()))?;
    let mut hasher = sha1::Sha1::new();
    hasher.update(ns);
    hasher.update(string(a, 1)?.as_bytes());
    let digest = hasher.finalize();
    let mut b = [0u8; 16];
    b.copy_from_slice(&digest[..16]);
    b[6] = (b[6] & 0x0f) | 0x50;
    b[8] = (b[8] & 0x3f) | 0x80;
    text(uuid_text(&b))
}

// ---------------------------------------------------------------------------------------------
// CIDR (go-cty-funcs' cidr package)
// ---------------------------------------------------------------------------------------------

/// A network prefix: its address, address width (32 or 128) and prefix length.
#[derive(Debug, Clone, Copy)]
struct Prefix {
    addr: u128,
    bits: u32,
    len: u32,
}

impl Prefix {
    fn parse(s: &str) -> Result<Prefix, FnError> {
        let bad = |problem| FnError::Cidr { text: s.to_owned(), problem };
        let (ip, len) = s.split_once('/').ok_or(bad("no `/` and prefix length"))?;
        let ip: std::net::IpAddr = ip.parse().map_err(|_| bad("not an IP address"))?;
        let (addr, bits) = match ip {
            std::net::IpAddr::V4(v4) => (u128::from(u32::from(v4)), 32),
            std::net::IpAddr::V6(v6) => (u128::from(v6), 128),
        };
        let len: u32 = len.parse().map_err(|_| bad("the prefix length is not a number"))?;
        if len > bits {
            return Err(bad("the prefix length is longer than the address"));
        }
        Ok(Prefix { addr: addr & mask(bits, len), bits, len })
    }

    fn host_bits(&self) -> u32 {
        self.bits - self.len
    }

    fn show_addr(&self, addr: u128) -> String {
        if self.bits == 32 {
            std::net::Ipv4Addr::from(addr as u32).to_string()
        } else {
            std::net::Ipv6Addr::from(addr).to_string()
        }
    }

    fn last(&self) -> u128 {
        self.addr | !mask(self.bits, self.len) & full(self.bits)
    }
}

fn full(bits: u32) -> u128 {
    if bits == 128 { u128::MAX } else { (1u128 << bits) - 1 }
}

fn mask(bits: u32, len: u32) -> u128 {
    full(bits) & !full(bits).checked_shr(len).unwrap_or(0)
}

fn cidrhost(a: &[Value]) -> FnResult {
    let p = Prefix::parse(&string(a, 0)?)?;
    let host = integer(a, 1)?;
    let max: u128 = if p.host_bits() == 128 { u128::MAX } else { (1u128 << p.host_bits()) - 1 };
    let out_of_range = FnError::OutOfRange { what: "the host number for this prefix" };
    let n: u128 = if host < 0 {
        let back = host.unsigned_abs() as u128 - 1;
        max.checked_sub(back).ok_or(out_of_range)?
    } else if (host as u128) > max {
        return Err(out_of_range);
    } else {
        host as u128
    };
    text(p.show_addr(p.addr | n))
}

fn cidrnetmask(a: &[Value]) -> FnResult {
    let p = Prefix::parse(&string(a, 0)?)?;
    if p.bits != 32 {
        return Err(FnError::Invalid("IPv6 addresses cannot have a netmask"));
    }
    text(p.show_addr(mask(32, p.len)))
}

fn subnet(p: &Prefix, newbits: i64, netnum: i64) -> Result<String, FnError> {
    let newbits = u32::try_from(newbits).map_err(|_| FnError::OutOfRange { what: "newbits" })?;
    if newbits > 32 {
        return Err(FnError::Invalid("may not extend prefix by more than 32 bits"));
    }
    let len = p.len + newbits;
    if len > p.bits {
        return Err(FnError::OutOfRange { what: "the extended prefix (insufficient address space)" });
    }
    let netnum = u128::try_from(netnum).map_err(|_| FnError::OutOfRange { what: "netnum" })?;
    if newbits < 128 && netnum >> newbits != 0 {
        return Err(FnError::OutOfRange { what: "netnum for this prefix extension" });
    }
    let shift = p.bits - len;
    let addr = p.addr | if shift >= 128 { 0 } else { netnum << shift };
    Ok(format!("{}/{len}", p.show_addr(addr)))
}

fn cidrsubnet(a: &[Value]) -> FnResult {
    let p = Prefix::parse(&string(a, 0)?)?;
    text(subnet(&p, integer(a, 1)?, integer(a, 2)?)?)
}

/// go-cty-funcs' `cidrsubnets`: consecutive subnets of the given extra bits, each after the
/// last, aligned to its own size.
fn cidrsubnets(a: &[Value]) -> FnResult {
    let p = Prefix::parse(&string(a, 0)?)?;
    if a.len() < 2 {
        return Ok(Value::Array(Vec::new()));
    }
    let mut out = Vec::new();
    // The address before which the next subnet may start.
    let mut next: u128 = p.addr;
    for i in 1..a.len() {
        let newbits = integer(a, i)?;
        let newbits = u32::try_from(newbits).map_err(|_| FnError::OutOfRange { what: "newbits" })?;
        let len = p.len + newbits;
        if newbits > 32 {
            return Err(FnError::Invalid("may not extend prefix by more than 32 bits"));
        }
        if newbits < 1 || len > p.bits {
            return Err(FnError::OutOfRange { what: "newbits (insufficient address space)" });
        }
        let size_mask = full(p.bits).checked_shr(len).unwrap_or(0);
        // Align up to the subnet's size.
        let start = match next.checked_add(size_mask) {
            Some(v) if v <= full(p.bits) => v & !size_mask & full(p.bits),
            _ => return Err(FnError::Invalid("not enough remaining address space for the subnets")),
        };
        let sub = Prefix { addr: start, bits: p.bits, len };
        if start < p.addr || sub.last() > p.last() {
            return Err(FnError::Invalid("not enough remaining address space for the subnets"));
        }
        out.push(Value::String(format!("{}/{len}", p.show_addr(start))));
        next = match sub.last().checked_add(1) {
            Some(n) if n <= full(p.bits) => n,
            _ => full(p.bits).wrapping_add(1),
        };
    }
    Ok(Value::Array(out))
}

// ---------------------------------------------------------------------------------------------
// semvercmp (Masterminds/semver v3 constraints)
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone, PartialEq, Eq)]
struct Version {
    major: u64,
    minor: u64,
    patch: u64,
    pre: Vec<String>,
}

impl Version {
    /// Masterminds' loose parse: an optional `v`, one to three numbers, `-pre`, `+meta`.
    fn parse(s: &str) -> Option<(Version, usize)> {
        let s = s.trim();
        let s = s.strip_prefix(['v', 'V']).unwrap_or(s);
        let (core, pre) = {
            let without_meta = s.split_once('+').map_or(s, |(c, _)| c);
            match without_meta.split_once('-') {
                Some((c, p)) => (c, p.split('.').map(str::to_owned).collect()),
                None => (without_meta, Vec::new()),
            }
        };
        let parts: Vec<&str> = core.split('.').collect();
        if parts.is_empty() || parts.len() > 3 {
            return None;
        }
        let mut nums = [0u64; 3];
        for (i, p) in parts.iter().enumerate() {
            nums[i] = p.parse().ok()?;
        }
        Some((Version { major: nums[0], minor: nums[1], patch: nums[2], pre }, parts.len()))
    }

    fn cmp(&self, other: &Version) -> Ordering {
        (self.major, self.minor, self.patch).cmp(&(other.major, other.minor, other.patch)).then_with(
            || match (self.pre.is_empty(), other.pre.is_empty()) {
                (true, true) => Ordering::Equal,
                (true, false) => Ordering::Greater,
                (false, true) => Ordering::Less,
                (false, false) => {
                    for (a, b) in self.pre.iter().zip(&other.pre) {
                        let ord = match (a.parse::<u64>(), b.parse::<u64>()) {
                            (Ok(x), Ok(y)) => x.cmp(&y),
                            (Ok(_), Err(_)) => Ordering::Less,
                            (Err(_), Ok(_)) => Ordering::Greater,
                            (Err(_), Err(_)) => a.cmp(b),
                        };
                        if ord != Ordering::Equal {
                            return ord;
                        }
                    }
                    self.pre.len().cmp(&other.pre.len())
                }
            },
        )
    }
}

/// Whether `version` satisfies `constraint` (`||` between alternatives, `,` or spaces between
/// conditions that all must hold; `=`, `!=`, `>`, `<`, `>=`, `<=`, `~`, `^`, `x`/`*`
/// wildcards, `a - b` ranges). A prerelease version matches only conditions naming one.
fn semver_check(version: &str, constraint: &str) -> Result<bool, FnError> {
    let (v, _) = Version::parse(version).ok_or_else(|| FnError::Semver(version.to_owned()))?;
    let bad = || FnError::Semver(constraint.to_owned());
    let mut any = false;
    for alternative in constraint.split("||") {
        // Hyphen ranges first: `1.2 - 1.4.5` is `>= 1.2, <= 1.4.5`.
        let normalized = alternative.replace(" - ", " HYPHEN ");
        let mut words: Vec<String> = Vec::new();
        for token in normalized.split([',', ' ']).filter(|t| !t.is_empty()) {
            // An operator alone (`>= 1.2`) belongs to the next word.
            match words.last_mut() {
                Some(last) if last.chars().all(|c| "<>=!~^".contains(c)) => last.push_str(token),
                _ => words.push(token.to_owned()),
            }
        }
        let mut conditions: Vec<String> = Vec::new();
        let mut i = 0;
        while i < words.len() {
            if words.get(i + 1).is_some_and(|w| w == "HYPHEN") {
                let upper = words.get(i + 2).ok_or_else(bad)?;
                conditions.push(format!(">={}", words[i]));
                conditions.push(format!("<={upper}"));
                i += 3;
            } else {
                conditions.push(words[i].clone());
                i += 1;
            }
        }
        if conditions.is_empty() {
            return Err(bad());
        }
        let mut all = true;
        for c in &conditions {
            if !condition(&v, c).ok_or_else(bad)? {
                all = false;
            }
        }
        any |= all;
    }
    Ok(any)
}

fn condition(v: &Version, c: &str) -> Option<bool> {
    let op_end = c.find(|ch: char| !"<>=!~^".contains(ch)).unwrap_or(c.len());
    let (op, rest) = c.split_at(op_end);
    let rest = rest.trim();
    let wild = |p: &str| matches!(p, "x" | "X" | "*");
    // Wildcards: the parts given before the first one.
    let parts: Vec<&str> = rest.trim_start_matches(['v', 'V']).split(['-', '+']).next()?.split('.').collect();
    let given = parts.iter().take_while(|p| !wild(p)).count();
    let (base, count) = if given == 0 {
        (Version { major: 0, minor: 0, patch: 0, pre: Vec::new() }, 0)
    } else {
        let text = if given < parts.len() { parts[..given].join(".") } else { rest.to_owned() };
        Version::parse(&text)?
    };
    let count = if given < parts.len() { given } else { count };
    // A prerelease version matches only a condition that names a prerelease.
    if !v.pre.is_empty() && base.pre.is_empty() {
        return Some(false);
    }
    let bump = |level: usize| {
        let mut b = base.clone();
        b.pre.clear();
        match level {
            0 => (b.major, b.minor, b.patch) = (b.major + 1, 0, 0),
            1 => (b.minor, b.patch) = (b.minor + 1, 0),
            _ => b.patch += 1,
        }
        b
    };
    let ge = |x: &Version| v.cmp(x) != Ordering::Less;
    let lt = |x: &Version| v.cmp(x) == Ordering::Less;
    // The range a partial version stands for: [base, upper).
    let upper = if count == 0 {
        None
    } else if count < 3 {
        Some(bump(count - 1))
    } else {
        None
    };
    Some(match op {
        "" | "=" => match (&upper, count) {
            (_, 0) => true,
            (Some(u), _) => ge(&base) && lt(u),
            (None, _) => v.cmp(&base) == Ordering::Equal,
        },
        "!=" => match (&upper, count) {
            (_, 0) => false,
            (Some(u), _) => !(ge(&base) && lt(u)),
            (None, _) => v.cmp(&base) != Ordering::Equal,
        },
        ">" => match &upper {
            Some(u) => ge(u),
            None => v.cmp(&base) == Ordering::Greater,
        },
        ">=" | "=>" => ge(&base),
        "<" => lt(&base),
        "<=" | "=<" => match &upper {
            Some(u) => lt(u),
            None => v.cmp(&base) != Ordering::Greater,
        },
        "~" | "~>" => {
            let u = if count <= 1 { bump(0) } else { bump(1) };
            ge(&base) && lt(&u)
        }
        "^" => {
            let u = if base.major > 0 || count <= 1 {
                bump(0)
            } else if base.minor > 0 || count == 2 {
                bump(1)
            } else {
                bump(2)
            };
            ge(&base) && lt(&u)
        }
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Evaluates the attribute `out` of the bake file `body`, with its user functions.
    fn eval_body(body: &str) -> Result<Value, EvalError> {
        let body: Body = hcl::parse(body).expect("HCL");
        let (functions, unusable) = UserFunctions::from_body(&body);
        assert!(unusable.is_empty(), "{unusable:?}");
        let mut ctx = Context::new();
        declare(&mut ctx);
        let out = body.attributes().find(|a| a.key.as_str() == "out").expect("an `out` attribute");
        evaluate(&out.expr, &ctx, &functions)
    }

    fn eval(expr: &str) -> Result<Value, EvalError> {
        eval_body(&format!("out = {expr}\n"))
    }

    /// Each expression evaluates to the JSON given (as Go writes it), or fails for `ERR`.
    fn check(table: &[(&str, &str)]) {
        for (expr, want) in table {
            let got = eval(expr);
            match *want {
                "ERR" => assert!(got.is_err(), "`{expr}` should fail, and gives {got:?}"),
                want => match got {
                    Ok(value) => assert_eq!(json_text(&value), want, "`{expr}`"),
                    Err(e) => panic!("`{expr}` fails: {e}"),
                },
            }
        }
    }

    /// Every function of buildx's list is declared, and no other.
    #[test]
    fn the_whole_of_buildx_stdlib_is_declared() {
        // The names of `stdlibFunctions` in docker/buildx bake/hclparser/stdlib.go.
        let buildx = "absolute add and base64decode base64encode basename bcrypt byteslen bytesslice can ceil chomp chunklist cidrhost cidrnetmask cidrsubnet cidrsubnets coalesce coalescelist compact concat contains convert csvdecode dirname distinct divide element equal flatten floor format formatdate formattimestamp formatlist greaterthan greaterthanorequalto hasindex homedir indent index indexof int join jsondecode jsonencode keys length lessthan lessthanorequalto log lookup lower max md5 merge min modulo multiply negate not notequal or parseint pow range regex_replace regex regexall replace reverse reverselist rsadecrypt sanitize semvercmp sethaselement setintersection setproduct setsubtract setsymmetricdifference setunion sha1 sha256 sha512 signum slice sort split strlen substr subtract timeadd timestamp title trim trimprefix trimspace trimsuffix try unixtimestampparse upper urlencode uuidv4 uuidv5 values zipmap";
        let mut ours: Vec<&str> = STDLIB.iter().map(|(n, _)| *n).chain(SPECIAL).collect();
        ours.sort_unstable();
        let mut theirs: Vec<&str> = buildx.split(' ').collect();
        theirs.sort_unstable();
        assert_eq!(ours, theirs);
    }

    /// go-cty's string_test.go (TestSubstr, TestUpper, TestLower, TestReverse, TestStrlen,
    /// TestChomp, TestIndent, TestTitle, TestTrim*, TestSplit, TestJoin, TestReplace).
    #[test]
    fn strings() {
        check(&[
            (r#"substr("hello", 0, 2)"#, r#""he""#),
            (r#"substr("hello", 1, 3)"#, r#""ell""#),
            (r#"substr("hello", 1, -1)"#, r#""ello""#),
            (r#"substr("hello", 1, -10)"#, r#""ello""#),
            (r#"substr("hello", 1, 10)"#, r#""ello""#),
            (r#"substr("hello", -3, -1)"#, r#""llo""#),
            (r#"substr("hello", -3, 2)"#, r#""ll""#),
            (r#"substr("hello", 10, 10)"#, r#""""#),
            (r#"substr("hello", 0, 0)"#, r#""""#),
            (r#"substr("noël", 0, 3)"#, r#""noë""#),
            (r#"substr("noël", 3, -1)"#, r#""l""#),
            (r#"substr("noël", -2, -1)"#, r#""ël""#),
            (r#"upper("hello")"#, r#""HELLO""#),
            (r#"upper("ÉCOLE é")"#, r#""ÉCOLE É""#),
            (r#"lower("HELLO")"#, r#""hello""#),
            (r#"reverse("hello")"#, r#""olleh""#),
            (r#"reverse("noël")"#, r#""lëon""#),
            (r#"strlen("noël")"#, "4"),
            (r#"length("hello")"#, "5"),
            (r#"chomp("hello\n")"#, r#""hello""#),
            (r#"chomp("hello\r\n\n")"#, r#""hello""#),
            (r#"chomp("hello\n\nworld")"#, r#""hello\n\nworld""#),
            (r#"indent(4, "a\nb")"#, r#""a\n    b""#),
            (r#"title("hello world")"#, r#""Hello World""#),
            (r#"trimspace(" hello \n")"#, r#""hello""#),
            (r#"trim("?!hello?!", "!?")"#, r#""hello""#),
            (r#"trimprefix("helloworld", "hello")"#, r#""world""#),
            (r#"trimsuffix("helloworld", "world")"#, r#""hello""#),
            (r#"split(",", "a,b,c")"#, r#"["a","b","c"]"#),
            (r#"split(",", "")"#, r#"[""]"#),
            (r#"join("-", ["a", "b"], ["c"])"#, r#""a-b-c""#),
            (r#"join("-", [])"#, r#""""#),
            (r#"join("-", [null])"#, "ERR"),
            (r#"replace("hello", "l", "L")"#, r#""heLLo""#),
            (r#"sanitize("foo/bar!@(ba+z)")"#, r#""foo_bar___ba_z_""#),
            (r#"sanitize("foo/🍕bar")"#, r#""foo__bar""#),
            (r#"sanitize("")"#, r#""""#),
            (r#"indent(1000000, "a\nb\nc")"#, "ERR"),
            (r#"replace("aaaaaaaaaaaaaaaaaaaaaaaaa", "a", format("%60000s", "x"))"#, "ERR"),
            (
                r#"format("%60000s%60000s%60000s%60000s%60000s%60000s%60000s%60000s%60000s%60000s%60000s%60000s%60000s%60000s%60000s%60000s%60000s%60000s", "a", "a", "a", "a", "a", "a", "a", "a", "a", "a", "a", "a", "a", "a", "a", "a", "a", "a")"#,
                "ERR",
            ),
            (r#"urlencode("a b&c=d/é")"#, r#""a+b%26c%3Dd%2F%C3%A9""#),
            (r#"upper(null)"#, "ERR"),
            (r#"upper(5)"#, r#""5""#),
        ]);
    }

    /// buildx's stdlib_test.go (TestBasename, TestDirname, TestSanitize, TestIndexOf).
    #[test]
    fn buildx_functions() {
        check(&[
            (r#"basename("")"#, r#"".""#),
            (r#"basename("/")"#, r#""/""#),
            (r#"basename("/foo/bar")"#, r#""bar""#),
            (r#"basename("foo/bar")"#, r#""bar""#),
            (r#"basename("/foo/bar...")"#, r#""bar...""#),
            (r#"dirname("")"#, r#"".""#),
            (r#"dirname("/")"#, r#""/""#),
            (r#"dirname("/foo/bar")"#, r#""/foo""#),
            (r#"dirname("foo/bar")"#, r#""foo""#),
            (r#"dirname("/foo/bar..")"#, r#""/foo""#),
            (r#"indexof(["a", "b", "c"], "b")"#, "1"),
            (r#"indexof(["a", "b", "c"], "d")"#, "ERR"),
            (r#"indexof([], "d")"#, "ERR"),
            (r#"semvercmp("1.2.3", ">= 1.0.0")"#, "true"),
            (r#"semvercmp("2.1.0", "< 2.0.0")"#, "false"),
            (r#"semvercmp("3.22", ">= 3.20")"#, "true"),
            (r#"semvercmp("not-a-version", ">= 1.0.0")"#, "ERR"),
            (r#"semvercmp("1.2.3", "not-a-constraint")"#, "ERR"),
            (r#"semvercmp("", ">= 1.0.0")"#, "ERR"),
            (r#"semvercmp("1.2.3", "")"#, "ERR"),
            // Masterminds/semver's own cases.
            (r#"semvercmp("1.2.3", "~1.2.0")"#, "true"),
            (r#"semvercmp("1.3.0", "~1.2.0")"#, "false"),
            (r#"semvercmp("1.9.0", "^1.2.0")"#, "true"),
            (r#"semvercmp("2.0.0", "^1.2.0")"#, "false"),
            (r#"semvercmp("0.3.0", "^0.2.3")"#, "false"),
            (r#"semvercmp("1.2.9", "1.2.x")"#, "true"),
            (r#"semvercmp("1.3.0", "1.2.x")"#, "false"),
            (r#"semvercmp("1.4.0", "1.2 - 1.4.5")"#, "true"),
            (r#"semvercmp("1.5.0", ">=1.2, <1.4 || >=1.5")"#, "true"),
            (r#"semvercmp("1.4.1", ">=1.2, <1.4 || >=1.5")"#, "false"),
            (r#"semvercmp("1.2.3-beta", ">=1.0.0")"#, "false"),
            (r#"semvercmp("1.2.3-beta", ">=1.2.3-alpha")"#, "true"),
            (r#"homedir()"#, "ERR"),
        ]);
    }

    /// go-cty's datetime_test.go (TestFormatDate on Go's reference time, its invalid
    /// timestamps, TestTimeAdd) and buildx's TestUnixTimestampParseFunc / TestFormatTimestampFunc.
    #[test]
    fn time() {
        let at = |format: &str| format!(r#"formatdate("{format}", "2006-01-02T15:04:05Z")"#);
        let cases = [
            ("", ""),
            ("YYYY-MM-DD", "2006-01-02"),
            ("EEE, MMM D ''YY", "Mon, Jan 2 '06"),
            ("hh:mm:ss", "15:04:05"),
            ("H 'o''clock' AA", "3 o'clock PM"),
            ("hh:mm:ssZZZZ", "15:04:05+0000"),
            ("hh:mm:ssZZZZZ", "15:04:05+00:00"),
            ("MMMM", "January"),
            ("EEEE", "Monday"),
            ("aa", "pm"),
            ("YYYY-MM-DD'T'hh:mm:ssZ", "2006-01-02T15:04:05Z"),
            ("DD MMM YYYY hh:mm ZZZ", "02 Jan 2006 15:04 UTC"),
            ("EEEE, DD-MMM-YY hh:mm:ss ZZZ", "Monday, 02-Jan-06 15:04:05 UTC"),
        ];
        for (format, want) in cases {
            assert_eq!(eval(&at(format)).expect("a date"), Value::from(want), "{format}");
        }
        for bad in ["Y", "YYYYY", "A", "a", "'blah blah", "'"] {
            assert!(eval(&at(bad)).is_err(), "{bad}");
        }
        for bad in [
            "",
            "2017-01-02",
            "2017-12-02t00:00:00Z",
            "2017:01:02",
            "2017-01-02T",
            "2017-01-02T00:00:00",
            "2017-01-02T26:00:00Z",
            "2017-13-02T00:00:00Z",
            "2017-02-31T00:00:00Z",
            "2000-01-01T1:12:34Z",
            "2000-01-01T00:00:00,000Z",
            "2000-01-01T00:00:00+24:00",
            "2000-01-01T00:00:00+00:60",
        ] {
            assert!(eval(&format!(r#"formatdate("YYYY", "{bad}")"#)).is_err(), "{bad}");
        }
        check(&[
            (r#"formatdate("hh:mm ZZZZZ", "2006-01-02T15:04:05-07:00")"#, r#""15:04 -07:00""#),
            (r#"timeadd("2017-11-22T00:00:00Z", "1h")"#, r#""2017-11-22T01:00:00Z""#),
            (r#"timeadd("2017-11-22T00:00:00Z", "-1h30m")"#, r#""2017-11-21T22:30:00Z""#),
            (r#"timeadd("2017-11-22T00:00:00+01:00", "10s")"#, r#""2017-11-22T00:00:10+01:00""#),
            (r#"timeadd("2017-11-22T00:00:00Z", "1d")"#, "ERR"),
            (r#"formattimestamp("X", "2015-10-21T00:00:00Z")"#, r#""1445385600""#),
            (r#"formattimestamp("X", 1445385600)"#, r#""1445385600""#),
            (r#"formattimestamp("YYYY-MM-DD", 1445385600)"#, r#""2015-10-21""#),
            (r#"formattimestamp("X", "0")"#, "ERR"),
            (
                "unixtimestampparse(1690328596)",
                r#"{"day":25,"hour":23,"iso_week":30,"iso_year":2023,"minute":43,"month":7,"month_name":"July","rfc3339":"2023-07-25T23:43:16Z","second":16,"weekday":2,"weekday_name":"Tuesday","year":2023,"year_day":206}"#,
            ),
            (
                "unixtimestampparse(-1)",
                r#"{"day":31,"hour":23,"iso_week":1,"iso_year":1970,"minute":59,"month":12,"month_name":"December","rfc3339":"1969-12-31T23:59:59Z","second":59,"weekday":3,"weekday_name":"Wednesday","year":1969,"year_day":365}"#,
            ),
        ]);
        // Impure: evaluated at import time, as an RFC 3339 instant that formatdate reads back.
        let now = eval("timestamp()").expect("now");
        let now = now.as_str().expect("a string");
        assert!(parse_rfc3339(now).is_ok(), "{now}");
    }

    /// go-cty's collection_test.go (TestDistinct, TestFlatten, TestMerge, TestChunklist,
    /// TestElement, TestKeys, TestValues, TestLookup, TestCompact, TestConcat, TestContains,
    /// TestSlice, TestZipmap, TestCoalesce*, TestIndex, TestReverseList, TestLength).
    #[test]
    fn collections() {
        check(&[
            (r#"distinct(["a", "b", "a", "c", "b"])"#, r#"["a","b","c"]"#),
            (r#"distinct([])"#, "[]"),
            (r#"flatten([["a", "b"], [], ["c", ["d"]]])"#, r#"["a","b","c","d"]"#),
            (r#"flatten([])"#, "[]"),
            (r#"merge({a = "b"}, {c = "d"})"#, r#"{"a":"b","c":"d"}"#),
            (r#"merge({a = "b"}, {a = "x", c = "d"})"#, r#"{"a":"x","c":"d"}"#),
            (r#"merge({a = "b"}, null)"#, r#"{"a":"b"}"#),
            (r#"merge()"#, "{}"),
            (r#"merge("a")"#, "ERR"),
            (r#"chunklist(["a", "b", "c"], 2)"#, r#"[["a","b"],["c"]]"#),
            (r#"chunklist(["a", "b", "c"], 0)"#, r#"[["a","b","c"]]"#),
            (r#"chunklist(["a"], -1)"#, "ERR"),
            (r#"element(["a", "b", "c"], 1)"#, r#""b""#),
            (r#"element(["a", "b", "c"], 4)"#, r#""b""#),
            (r#"element(["a", "b", "c"], -1)"#, r#""c""#),
            (r#"element([], 0)"#, "ERR"),
            (r#"keys({b = 1, a = 2})"#, r#"["a","b"]"#),
            (r#"values({b = 1, a = 2})"#, "[2,1]"),
            (r#"lookup({a = "x"}, "a", "d")"#, r#""x""#),
            (r#"lookup({a = "x"}, "b", "d")"#, r#""d""#),
            (r#"compact(["a", "", "b", null])"#, r#"["a","b"]"#),
            (r#"concat(["a"], ["b", "c"])"#, r#"["a","b","c"]"#),
            (r#"contains(["a", "b"], "b")"#, "true"),
            (r#"contains(["a", "b"], "c")"#, "false"),
            (r#"slice(["a", "b", "c", "d"], 1, 3)"#, r#"["b","c"]"#),
            (r#"slice(["a"], 1, 3)"#, "ERR"),
            (r#"zipmap(["a", "b"], [1, 2])"#, r#"{"a":1,"b":2}"#),
            (r#"zipmap(["a"], [])"#, "ERR"),
            (r#"coalesce(null, "b")"#, r#""b""#),
            (r#"coalesce(null)"#, "ERR"),
            (r#"coalescelist([], ["b"])"#, r#"["b"]"#),
            (r#"index(["a", "b"], 1)"#, r#""b""#),
            (r#"index({a = 1}, "a")"#, "1"),
            (r#"index({a = 1}, "b")"#, "ERR"),
            (r#"hasindex({a = 1}, "b")"#, "false"),
            (r#"hasindex(["a"], 0)"#, "true"),
            (r#"reverselist(["a", "b"])"#, r#"["b","a"]"#),
            (r#"length(["a", "b"])"#, "2"),
            (r#"length({a = 1})"#, "1"),
            (r#"sort(["b", "a", "c"])"#, r#"["a","b","c"]"#),
            (r#"sort([3, 10, 1])"#, r#"["1","10","3"]"#),
            (r#"range(3)"#, "[0,1,2]"),
            (r#"range(1, 4)"#, "[1,2,3]"),
            (r#"range(4, 1)"#, "[4,3,2]"),
            (r#"range(0, 1, 0.25)"#, "[0,0.25,0.5,0.75]"),
            (r#"range(0, 1, 0)"#, "ERR"),
            (r#"range(1, 0, 1)"#, "ERR"),
            (r#"range(2000)"#, "ERR"),
        ]);
    }

    /// go-cty's set_test.go (TestSetUnion, TestSetIntersection, TestSetSubtract,
    /// TestSetSymmetricDifference, TestSetHasElement) and TestSetProduct: a set's elements come
    /// out sorted and once.
    #[test]
    fn sets_are_sorted_and_distinct() {
        check(&[
            (r#"setunion(["b", "a"], ["c", "a"])"#, r#"["a","b","c"]"#),
            (r#"setintersection(["a", "b", "c"], ["b", "c", "d"])"#, r#"["b","c"]"#),
            (r#"setsubtract(["a", "b", "c"], ["a", "c"])"#, r#"["b"]"#),
            (r#"setsymmetricdifference(["a", "b"], ["b", "c"])"#, r#"["a","c"]"#),
            (r#"sethaselement(["a", "b"], "b")"#, "true"),
            (r#"setunion([3, 1], [2, 10])"#, "[1,2,3,10]"),
            (r#"setproduct(["a", "b"], ["x", "y"])"#, r#"[["a","x"],["a","y"],["b","x"],["b","y"]]"#),
            (r#"setproduct(["a"])"#, "ERR"),
        ]);
    }

    /// go-cty's number_test.go (TestAbsolute, TestAdd, TestCeil, TestFloor, TestLog, TestPow,
    /// TestSignum, TestParseInt, TestModulo, TestMax, TestMin, TestInt) and bool_test.go.
    #[test]
    fn numbers_and_bools() {
        check(&[
            ("absolute(-1)", "1"),
            ("add(1, 2)", "3"),
            ("add(1.5, 2)", "3.5"),
            (r#"add("1", 2)"#, "3"),
            ("subtract(1, 2)", "-1"),
            ("multiply(2, 3)", "6"),
            ("divide(1, 2)", "0.5"),
            ("divide(0, 0)", "ERR"),
            ("divide(1, 0)", "ERR"),
            ("modulo(7, 3)", "1"),
            ("modulo(-7, 3)", "-1"),
            ("modulo(7, 0)", "7"),
            ("negate(5)", "-5"),
            ("ceil(1.2)", "2"),
            ("floor(-1.2)", "-2"),
            ("int(-1.8)", "-1"),
            ("log(8, 2)", "3"),
            ("pow(2, 10)", "1024"),
            ("signum(-3)", "-1"),
            ("max(1, 5, 3)", "5"),
            ("min(1, 5, 3)", "1"),
            ("max()", "ERR"),
            (r#"parseint("100", 10)"#, "100"),
            (r#"parseint("FF", 16)"#, "255"),
            (r#"parseint("-11", 2)"#, "-3"),
            (r#"parseint("zz", 36)"#, "1295"),
            (r#"parseint("12", 2)"#, "ERR"),
            (r#"parseint("1", 1)"#, "ERR"),
            ("greaterthan(2, 1)", "true"),
            ("lessthanorequalto(2, 2)", "true"),
            ("and(true, false)", "false"),
            ("or(true, false)", "true"),
            ("not(true)", "false"),
            (r#"equal("a", "a")"#, "true"),
            (r#"notequal("a", 1)"#, "true"),
            ("equal(1, 1.0)", "true"),
        ]);
    }

    /// go-cty's regexp_test.go (TestRegex, TestRegexAll, TestRegexReplace).
    #[test]
    fn regexes() {
        check(&[
            (r#"regex("[a-z]+", "135abc456def789")"#, r#""abc""#),
            (r#"regex("([0-9]+)([a-z]+)", "135abc456def")"#, r#"["135","abc"]"#),
            (r#"regex("(?P<num>[0-9]+)(?P<name>[a-z]+)", "135abc456def")"#, r#"{"name":"abc","num":"135"}"#),
            (r#"regex("(?P<num>[0-9]+)([a-z]+)", "135abc")"#, "ERR"),
            (r#"regex("([0-9]+)?([a-z]+)", "abc")"#, r#"[null,"abc"]"#),
            (r#"regex("[a-z]+", "123")"#, "ERR"),
            (r#"regex("(", "123")"#, "ERR"),
            (r#"regexall("[a-z]+", "135abc456def789")"#, r#"["abc","def"]"#),
            (r#"regexall("([0-9]+)([a-z]+)", "135abc456def")"#, r#"[["135","abc"],["456","def"]]"#),
            (r#"regexall("[a-z]+", "123")"#, "[]"),
            (r#"regex_replace("hello world", "o", "0")"#, r#""hell0 w0rld""#),
            (r#"regex_replace("v1.2.3", "^v([0-9]+)\\.([0-9]+).*$", "$1-$2")"#, r#""1-2""#),
            (r#"regex_replace("a-b", "(?P<x>[a-z])", "$${x}$${x}")"#, r#""aa-bb""#),
        ]);
    }

    /// go-cty's format_test.go (TestFormat, TestFormatList).
    #[test]
    fn formats() {
        check(&[
            (r#"format("hello")"#, r#""hello""#),
            (r#"format("100%%")"#, r#""100%""#),
            (r#"format("Hello, %s!", "Ander")"#, r#""Hello, Ander!""#),
            (r#"format("%d", 5)"#, r#""5""#),
            (r#"format("%5d", 5)"#, r#""    5""#),
            (r#"format("%-5d|", 5)"#, r#""5    |""#),
            (r#"format("%05d", -5)"#, r#""-0005""#),
            (r#"format("%+d", 5)"#, r#""+5""#),
            (r#"format("%x %X %o %b", 255, 255, 8, 5)"#, r#""ff FF 10 101""#),
            (r#"format("%#x", 255)"#, r#""0xff""#),
            (r#"format("%f", 1.5)"#, r#""1.500000""#),
            (r#"format("%.2f", 3.14159)"#, r#""3.14""#),
            (r#"format("%e", 1500)"#, r#""1.500000e+03""#),
            (r#"format("%g", 1.5)"#, r#""1.5""#),
            (r#"format("%g", 1000000)"#, r#""1e+06""#),
            (r#"format("%v", 1.5)"#, r#""1.5""#),
            (r#"format("%v", true)"#, r#""true""#),
            (r#"format("%v", ["a"])"#, r#""[\"a\"]""#),
            (r#"format("%#v", "a")"#, r#""\"a\"""#),
            (r#"format("%q", "a\"b")"#, r#""\"a\\\"b\"""#),
            (r#"format("%t", true)"#, r#""true""#),
            (r#"format("%.3s", "abcdef")"#, r#""abc""#),
            (r#"format("%[2]s %[1]s", "a", "b")"#, r#""b a""#),
            (r#"format("%s")"#, "ERR"),
            (r#"format("%s", "a", "b")"#, "ERR"),
            (r#"format("%d", 1.5)"#, "ERR"),
            (r#"format("%s", null)"#, "ERR"),
            (r#"format("%z", 1)"#, "ERR"),
            (r#"formatlist("%s-%s", ["a", "b"], "x")"#, r#"["a-x","b-x"]"#),
            (r#"formatlist("%s", ["a"], ["b", "c"])"#, "ERR"),
            (r#"formatlist("x")"#, r#"["x"]"#),
        ]);
    }

    /// go-cty's json_test.go and csv_test.go, go-cty-funcs' crypto and encoding tests.
    #[test]
    fn encodings_and_hashes() {
        check(&[
            (
                r#"jsonencode({b = [1, true, null], a = "<x>"})"#,
                r#""{\"a\":\"\\u003cx\\u003e\",\"b\":[1,true,null]}""#,
            ),
            (r#"jsondecode("{\"a\": [1, 2.5, \"x\"]}")"#, r#"{"a":[1,2.5,"x"]}"#),
            (r#"jsondecode("{")"#, "ERR"),
            (r#"csvdecode("a,b\n1,2\n\"x,y\",\"q\"\"\"\n")"#, r#"[{"a":"1","b":"2"},{"a":"x,y","b":"q\""}]"#),
            (r#"csvdecode("a,b\n1\n")"#, "ERR"),
            (r#"csvdecode("")"#, "ERR"),
            (r#"base64encode("abc123!?$*&()'-=@~")"#, r#""YWJjMTIzIT8kKiYoKSctPUB+""#),
            (r#"base64decode("YWJjMTIzIT8kKiYoKSctPUB+")"#, r#""abc123!?$*\u0026()'-=@~""#),
            (r#"base64decode("not base64")"#, "ERR"),
            (r#"md5("tada")"#, r#""ce47d07243bb6eaf5e1322c81baf9bbf""#),
            (r#"sha1("test")"#, r#""a94a8fe5ccb19ba61c4c0873d391e987982fbbd3""#),
            (r#"sha256("test")"#, r#""9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08""#),
            (
                r#"sha512("test")"#,
                r#""ee26b0dd4af7e749aa1a8ee3c10ae9923f618980772e473f8819a5d4940e0db27ac185f8a0e1d5f84f88bc887fd67b143732c304cc5fa9ad8e6f57f50028a8ff""#,
            ),
            (r#"uuidv5("dns", "tada")"#, r#""faa898db-9b9d-5b75-86a9-149e7bb8e3b8""#),
            (r#"uuidv5("url", "tada")"#, r#""2c1ff6b4-211f-577e-94de-d978b0caa16e""#),
            (r#"uuidv5("tada", "tada")"#, "ERR"),
            ("bcrypt(\"x\")", "ERR"),
            ("rsadecrypt(\"x\", \"y\")", "ERR"),
        ]);
        let uuid = eval("uuidv4()").expect("a uuid");
        let uuid = uuid.as_str().expect("a string");
        assert!(parse_uuid(uuid).is_some() && uuid.as_bytes()[14] == b'4', "{uuid}");
        assert_ne!(eval("uuidv4()").expect("a uuid").as_str(), Some(uuid));
    }

    /// go-cty-funcs' cidr tests (host_test.go, netmask_test.go, subnet_test.go, subnets_test.go).
    #[test]
    fn cidr() {
        check(&[
            (r#"cidrhost("192.168.1.0/24", 5)"#, r#""192.168.1.5""#),
            (r#"cidrhost("192.168.1.0/24", -5)"#, r#""192.168.1.251""#),
            (r#"cidrhost("192.168.1.0/24", -256)"#, r#""192.168.1.0""#),
            (r#"cidrhost("192.168.1.0/30", 255)"#, "ERR"),
            (r#"cidrhost("192.168.1.0/24", 256)"#, "ERR"),
            (r#"cidrhost("1::/64", 5)"#, r#""1::5""#),
            (r#"cidrhost("1::1/128", 0)"#, r#""1::1""#),
            (r#"cidrhost("10.0.0.1/32", 0)"#, r#""10.0.0.1""#),
            (r#"cidrnetmask("0.0.0.0/0")"#, r#""0.0.0.0""#),
            (r#"cidrsubnets("1::/96", 32)"#, r#"["1::/128"]"#),
            (r#"cidrnetmask("192.168.1.0/24")"#, r#""255.255.255.0""#),
            (r#"cidrnetmask("192.168.1.0/32")"#, r#""255.255.255.255""#),
            (r#"cidrnetmask("1::/64")"#, "ERR"),
            (r#"cidrnetmask("not-a-cidr")"#, "ERR"),
            (r#"cidrsubnet("192.168.2.0/20", 4, 6)"#, r#""192.168.6.0/24""#),
            (r#"cidrsubnet("fe80::/48", 16, 6)"#, r#""fe80:0:0:6::/64""#),
            (r#"cidrsubnet("192.168.2.0/20", 4, 16)"#, "ERR"),
            (r#"cidrsubnet("192.168.2.0/30", 4, 6)"#, "ERR"),
            (
                r#"cidrsubnets("10.0.0.0/21", 3, 3, 3, 4, 4, 4, 7, 7, 7)"#,
                r#"["10.0.0.0/24","10.0.1.0/24","10.0.2.0/24","10.0.3.0/25","10.0.3.128/25","10.0.4.0/25","10.0.4.128/28","10.0.4.144/28","10.0.4.160/28"]"#,
            ),
            (r#"cidrsubnets("10.0.0.0/30", 1, 3)"#, "ERR"),
            (r#"cidrsubnets("10.0.0.0/8", 1, 1, 1)"#, "ERR"),
            (r#"cidrsubnets("10.0.0.0/8", 1, 0)"#, "ERR"),
            (r#"cidrsubnets("10.0.0.0/8", 1, -1)"#, "ERR"),
            (r#"cidrsubnets("fe80::/48", 1, 33)"#, "ERR"),
            (r#"cidrsubnets("fe80::/48", 1, 16)"#, r#"["fe80::/49","fe80:0:0:8000::/64"]"#),
        ]);
    }

    /// HCL's tryfunc tests: `can` is whether its argument evaluates, `try` the first argument
    /// that does; neither hides a recursive function.
    #[test]
    fn can_and_try() {
        check(&[
            ("can(nope)", "false"),
            ("can(1)", "true"),
            (r#"can(regex("[a-z]+", "123"))"#, "false"),
            (r#"can(regex("[a-z]+", "abc"))"#, "true"),
            (r#"can({a = 1}.b)"#, "false"),
            (r#"try(nope, "fallback")"#, r#""fallback""#),
            (r#"try({a = 1}.b, {a = 1}.a, "x")"#, "1"),
            (r#"try(nope, also_nope)"#, "ERR"),
            ("try()", "ERR"),
            ("can()", "ERR"),
            // Inside other expressions, templates, conditionals and `for`.
            (r#"[for x in ["1", "a"] : can(parseint(x, 10))]"#, "[true,false]"),
            (r#"{for k, v in {a = "1", b = "z"} : k => try(parseint(v, 10), -1)}"#, r#"{"a":1,"b":-1}"#),
            (r#""v${try(nope, "1")}-${upper("x")}""#, r#""v1-X""#),
            (r#"can(nope) ? "yes" : "no""#, r#""no""#),
            (r#"true ? "t" : try(nope)"#, r#""t""#),
            (r#"length([try(nope, 1), 2]) + 1"#, "3"),
            (r#""%{if can(nope)}a%{else}b%{endif}""#, r#""b""#),
            (r#""%{for x in ["a"]}${try(x, "")}%{endfor}""#, "ERR"),
            (r#"{for x in ["a", "bb", "c"] : length(x) => try(x)...}"#, r#"{"1":["a","c"],"2":["bb"]}"#),
            (r#"{for x in ["a", "a"] : x => try(x)}"#, "ERR"),
            (r#"[for x in [1, 2, 3] : try(x) if x != 2]"#, "[1,3]"),
        ]);
    }

    /// HCL's typeexpr tests for `convert`.
    #[test]
    fn convert_to_types() {
        check(&[
            (r#"convert(5, string)"#, r#""5""#),
            (r#"convert("5", number)"#, "5"),
            (r#"convert("true", bool)"#, "true"),
            (r#"convert(["b", "a", "b"], set(string))"#, r#"["a","b"]"#),
            (r#"convert([1, 2], list(string))"#, r#"["1","2"]"#),
            (r#"convert({a = 1}, map(string))"#, r#"{"a":"1"}"#),
            (r#"convert([1, "a"], tuple([string, string]))"#, r#"["1","a"]"#),
            (r#"convert({a = 1, b = 2}, object({a = string}))"#, r#"{"a":"1"}"#),
            (r#"convert({b = 2}, object({a = string}))"#, "ERR"),
            (r#"convert("x", number)"#, "ERR"),
            (r#"convert(1, strange)"#, "ERR"),
            (r#"convert(null, string)"#, "null"),
        ]);
    }

    /// User `function` blocks (buildx's hclparser_test.go TestHCLFunctions*): params, variadic
    /// params, calls from other functions, from templates and for expressions; recursion is
    /// refused, deep nesting bounded.
    #[test]
    fn user_functions() {
        let file = r#"
            function "tags" {
              params = [name]
              variadic_params = rest
              result = concat(["r/${name}:latest"], [for t in rest : "r/${name}:${t}"])
            }
            function "increment" {
              params = [n]
              result = n + 1
            }
            function "twice" {
              params = [n]
              result = increment(increment(n))
            }
            function "noargs" {
              params = []
              result = "x"
            }
        "#;
        let run = |expr: &str| eval_body(&format!("{file}\nout = {expr}\n"));
        assert_eq!(
            json_text(&run(r#"tags("app", "1", "2")"#).expect("tags")),
            r#"["r/app:latest","r/app:1","r/app:2"]"#
        );
        assert_eq!(json_text(&run(r#"tags("app")"#).expect("tags")), r#"["r/app:latest"]"#);
        assert_eq!(json_text(&run("twice(1)").expect("twice")), "3");
        assert_eq!(json_text(&run(r#""n-${twice(1)}""#).expect("a template")), r#""n-3""#);
        assert_eq!(json_text(&run("[for n in [1, 2] : increment(n)]").expect("a for")), "[2,3]");
        assert_eq!(json_text(&run("noargs()").expect("no arguments")), r#""x""#);
        assert_eq!(json_text(&run(r#"tags(["a", "b"]...)"#).expect("spread")), r#"["r/a:latest","r/a:b"]"#);
        assert!(matches!(run("increment()"), Err(EvalError::Arity { .. })));
        assert!(matches!(run("increment(1, 2)"), Err(EvalError::Arity { .. })));
        assert!(matches!(run("can(increment())"), Ok(Value::Bool(false))));

        let recursive = r#"
            function "a" {
              params = [n]
              result = b(n)
            }
            function "b" {
              params = [n]
              result = n > 0 ? a(n - 1) : 0
            }
            out = try(a(3), "hidden")
        "#;
        let err = eval_body(recursive).expect_err("recursion is refused");
        assert!(matches!(err, EvalError::Recursion { .. }), "{err}");
        assert!(err.to_string().contains("a → b → a"), "{err}");

        // A chain of 70 functions, each calling the next: deeper than the bound.
        let mut chain = String::new();
        for i in 0..70 {
            let _ = std::fmt::Write::write_fmt(
                &mut chain,
                format_args!("function \"f{i}\" {{\n params = []\n result = f{}()\n}}\n", i + 1),
            );
        }
        chain.push_str("function \"f70\" {\n params = []\n result = 1\n}\nout = f0()\n");
        assert!(matches!(eval_body(&chain), Err(EvalError::Depth { .. })));

        // Functions that each call the next twice: 2^30 calls, stopped at the bound.
        let mut doubling = String::new();
        for i in 0..30 {
            let _ = std::fmt::Write::write_fmt(
                &mut doubling,
                format_args!("function \"g{i}\" {{\n params = []\n result = g{0}() + g{0}()\n}}\n", i + 1),
            );
        }
        doubling.push_str("function \"g30\" {\n params = []\n result = 1\n}\nout = g0()\n");
        assert!(matches!(eval_body(&doubling), Err(EvalError::Calls { .. })));

        // Functions that each double their argument: stopped when a result passes 1 MiB.
        let mut growing = String::new();
        for i in 0..40 {
            let _ = std::fmt::Write::write_fmt(
                &mut growing,
                format_args!(
                    "function \"h{i}\" {{\n params = [s]\n result = h{}(\"${{s}}${{s}}\")\n}}\n",
                    i + 1
                ),
            );
        }
        growing.push_str("function \"h40\" {\n params = [s]\n result = s\n}\nout = try(h0(\"xxxxxxxxxxxxxxxx\"), \"hidden\")\n");
        assert!(
            matches!(eval_body(&growing), Err(EvalError::TooLarge { .. })),
            "{:?}",
            eval_body(&growing).map(|v| size(&v))
        );
    }

    /// User functions as bake evaluates them (the kinds of case buildx's own HCL tests cover,
    /// written here in our own words): a one-interpolation template is its value, a function
    /// over a number, one that reads a global variable, one that calls another.
    #[test]
    fn user_functions_as_bake_evaluates_them() {
        let with = |file: &str, vars: &[(&str, &str)]| {
            let body: Body = hcl::parse(file).expect("HCL");
            let (functions, unusable) = UserFunctions::from_body(&body);
            assert!(unusable.is_empty(), "{unusable:?}");
            let mut ctx = Context::new();
            declare(&mut ctx);
            for (name, value) in vars {
                ctx.declare_var(*name, *value);
            }
            let out = body.attributes().find(|a| a.key.as_str() == "out").expect("out");
            json_text(&evaluate(&out.expr, &ctx, &functions).expect("a value"))
        };
        // A template of one interpolation is its value (HCL's unwrapping); bake's `args` then
        // makes the number a string.
        assert_eq!(with("out = \"${add(40, 2)}\"\n", &[]), "42");
        let twice = "function \"twice\" {\n params = [n]\n result = n * 2\n}\nout = \"${twice(21)}\"\n";
        assert_eq!(with(twice, &[]), "42");
        let image = "function \"image\" {\n params = [version]\n result = [\"${REGISTRY}/tool:${version}\"]\n}\nout = image(\"2.0\")\n";
        assert_eq!(with(image, &[("REGISTRY", "ghcr.io/acme")]), r#"["ghcr.io/acme/tool:2.0"]"#);
        assert_eq!(with(image, &[("REGISTRY", "quay.io/team")]), r#"["quay.io/team/tool:2.0"]"#);
        let nested = r#"
            function "quoted" {
              params = [word]
              result = "'${word}'"
            }
            function "shout" {
              params = [word]
              result = "${lower(word)} -> ${quoted(SUFFIX)}"
            }
            out = shout("HEY")
        "#;
        assert_eq!(with(nested, &[("SUFFIX", "there")]), r#""hey -\u003e 'there'""#);
        for (file, problem) in [
            ("function \"foo\" {\n result = \"bar\"\n}\n", "`params` must be a list of names"),
            ("function \"foo\" {\n params = [\"a\"]\n}\n", "`params` must be a list of names"),
            ("function \"foo\" {\n params = [a]\n}\n", "has no `result`"),
        ] {
            let (functions, unusable) = UserFunctions::from_body(&hcl::parse(file).expect("HCL"));
            assert!(!functions.contains("foo"));
            assert!(unusable[0].to_string().contains(problem), "{unusable:?}");
        }
    }

    /// A declared variable not yet evaluated is not hidden by `can`/`try`: the caller evaluates
    /// it first (bake.rs orders variables by the undefined one an evaluation names).
    #[test]
    fn try_does_not_hide_a_variable_not_yet_evaluated() {
        let file = "variable \"LATER\" {\n default = \"v\"\n}\nout = try(LATER, \"fallback\")\n";
        let err = eval_body(file).expect_err("LATER is not in the context yet");
        assert_eq!(err.undefined_var(), Some("LATER"));
        let file = "variable \"LATER\" {\n default = \"v\"\n}\nout = can(LATER)\n";
        assert_eq!(eval_body(file).expect_err("not yet").undefined_var(), Some("LATER"));
        assert_eq!(eval("try(UNDECLARED, \"fallback\")").expect("a fallback"), Value::from("fallback"));
    }

    /// Unusable `function` blocks are named, each with its fix, and the others are kept.
    #[test]
    fn unusable_function_blocks_are_named() {
        let body: Body = hcl::parse(
            r#"
            function "ok" {
              params = []
              result = 1
            }
            function "noresult" {
              params = []
            }
            function "badparams" {
              params = ["x"]
              result = 1
            }
            function "md5" {
              params = [x]
              result = x
            }
            function "ok" {
              params = []
              result = 2
            }
            "#,
        )
        .expect("HCL");
        let (functions, errors) = UserFunctions::from_body(&body);
        assert!(functions.contains("ok"));
        let messages: Vec<String> = errors.iter().map(ToString::to_string).collect();
        assert_eq!(messages.len(), 4, "{messages:?}");
        assert!(messages[0].contains("`noresult` has no `result`"), "{messages:?}");
        assert!(messages[1].contains("`badparams`: `params` must be a list of names"), "{messages:?}");
        assert!(messages[2].contains("`md5` has the name of a standard function"), "{messages:?}");
        assert!(messages[3].contains("`ok` is defined twice"), "{messages:?}");
    }
}
