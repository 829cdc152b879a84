//! Load-time translation of the legacy exception-handling encoding to the standard one.
//!
//! Toolchains up to LLVM 19 (wasix-libc's exception-handling sysroot, clang-16's
//! `-fwasm-exceptions` and `-mllvm -wasm-enable-sjlj`) emit the first, "legacy" encoding of
//! Wasm exceptions: `try`, `catch`, `catch_all`, `delegate`, `rethrow`. The engine runs only
//! the standardised one (`try_table` with `catch_ref`/`catch_all_ref`, `exnref`,
//! `throw_ref`), so such a module is rewritten here, before compilation; the compiled result
//! is what the module cache keeps. `throw` is the same in both.
//!
//! A `try` with handlers becomes blocks that the `try_table` branches out to, one per
//! handler, innermost first, each carrying the tag's values and the caught `exnref`:
//!
//! ```text
//! try (bt)                     block $done (bt)
//!   B                            block $all (result exnref)
//! catch $t                         block $t (result T* exnref)
//!   H1                               try_table (bt) (catch_ref $t $t) (catch_all_ref $all)
//! catch_all                            B
//!   H2                               end
//! end                                br $done
//!                                  end
//!                                  local.set $exn.k    ;; T* stays, as the legacy catch left it
//!                                  H1
//!                                  br $done
//!                                end
//!                                local.set $exn.k
//!                                H2
//!                              end
//! ```
//!
//! `rethrow d` becomes `local.get $exn.k; throw_ref`, where `k` is the try nesting depth of
//! the handler `d` names (one `exnref` local per depth is added to the function).
//! `try (bt) B delegate d` becomes `try_table (bt) (catch_all_ref $D) B end`, where `$D` is a
//! block `(result exnref)` wrapped around the body of the `try` the exception is delegated to
//! (followed by `throw_ref`, so the exception is thrown again inside that `try`) — or around the
//! whole function body when it is delegated to the caller. A delegate naming a block, loop or
//! `if`, or a `try` in its handlers, goes to the next `try` body out from there, as the legacy
//! semantics say; one naming a `try` that itself delegates follows that one.
//!
//! Branches are renumbered past the added blocks: a branch to a `try`'s label targets the
//! `try_table` from its body and `$done` from its handlers. A `try` with block parameters
//! (which no toolchain emits) is refused.

use std::borrow::Cow;
use std::collections::HashMap;

use wasm_encoder::reencode::{Error as ReencodeError, Reencode};
use wasm_encoder::{BlockType, Catch, Instruction, ValType};
use wasmparser::{Operator, Parser, Payload, WasmFeatures};

/// Bumped when the translation changes, so cached compilations of older ones are not reused.
pub(crate) const VERSION: u32 = 1;

/// A parser that accepts every encoding wasmix reads (the legacy exception instructions
/// among them), so a module can be rewritten before the engine sees it.
pub(crate) fn parser() -> Parser {
    let mut p = Parser::new(0);
    p.set_features(WasmFeatures::all());
    p
}

/// Why a module's legacy exception instructions could not be translated.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub(crate) struct Untranslatable(pub(crate) String);

/// Whether `wasm` uses legacy exception instructions (false for a module that does not parse).
pub(crate) fn uses_legacy(wasm: &[u8]) -> bool {
    survey(wasm).is_ok_and(|s| s.legacy)
}

/// `wasm` with its legacy exception instructions translated; unchanged (borrowed) when it has
/// none.
pub(crate) fn translate(wasm: &[u8]) -> Result<Cow<'_, [u8]>, Untranslatable> {
    let s = survey(wasm).map_err(|e| Untranslatable(e.to_string()))?;
    if !s.legacy {
        return Ok(Cow::Borrowed(wasm));
    }
    let mut t = Translator::new(s);
    let mut module = wasm_encoder::Module::new();
    t.parse_core_module(&mut module, parser(), wasm)
        .map_err(|e| {
            Untranslatable(match e {
                ReencodeError::UserError(msg) => msg,
                e => e.to_string(),
            })
        })?;
    Ok(Cow::Owned(module.finish()))
}

/// What the translation needs to know before the code section.
#[derive(Default)]
struct Survey {
    /// Every type: `Some((params, results))` for function types.
    types: Vec<Option<(Vec<wasmparser::ValType>, Vec<wasmparser::ValType>)>>,
    imported_funcs: u32,
    /// The type of every tag, imported ones first.
    tags: Vec<u32>,
    /// The type of every defined function.
    funcs: Vec<u32>,
    /// Some function uses a legacy exception instruction.
    legacy: bool,
}

fn survey(wasm: &[u8]) -> wasmparser::Result<Survey> {
    let mut s = Survey::default();
    for payload in parser().parse_all(wasm) {
        match payload? {
            Payload::TypeSection(r) => {
                for group in r {
                    for ty in group?.types() {
                        s.types.push(match &ty.composite_type.inner {
                            wasmparser::CompositeInnerType::Func(f) => {
                                Some((f.params().to_vec(), f.results().to_vec()))
                            }
                            _ => None,
                        });
                    }
                }
            }
            Payload::ImportSection(r) => {
                for import in r.into_imports() {
                    match import?.ty {
                        wasmparser::TypeRef::Func(_) => s.imported_funcs += 1,
                        wasmparser::TypeRef::Tag(t) => s.tags.push(t.func_type_idx),
                        _ => {}
                    }
                }
            }
            Payload::TagSection(r) => {
                for tag in r {
                    s.tags.push(tag?.func_type_idx);
                }
            }
            Payload::FunctionSection(r) => {
                for ty in r {
                    s.funcs.push(ty?);
                }
            }
            Payload::CodeSectionEntry(body) if !s.legacy => {
                let mut ops = body.get_operators_reader()?;
                while !ops.eof() {
                    if matches!(
                        ops.read()?,
                        Operator::Try { .. }
                            | Operator::Catch { .. }
                            | Operator::CatchAll
                            | Operator::Delegate { .. }
                            | Operator::Rethrow { .. }
                    ) {
                        s.legacy = true;
                        break;
                    }
                }
            }
            _ => {}
        }
    }
    Ok(s)
}

/// Where a delegated exception goes.
#[derive(Clone, Copy, PartialEq, Debug)]
enum Target {
    /// The body of the `try` that starts at this operator.
    Try(usize),
    /// The function's caller.
    Caller,
}

/// One legacy `try` of a function, found by the first pass.
#[derive(Default)]
struct TryPlan {
    /// Its handlers in order: a tag's `catch`, or `None` for `catch_all`.
    handlers: Vec<Option<u32>>,
    /// Where its `delegate` sends exceptions (a `try ... delegate` has no handlers).
    delegate: Option<Target>,
    /// Some `delegate` sends exceptions into its body.
    delegated_to: bool,
}

/// The first pass over one function: its `try`s by operator position.
#[derive(Default)]
struct FuncPlan {
    tries: HashMap<usize, TryPlan>,
    /// Some `delegate` goes to the caller.
    to_caller: bool,
    /// How deeply `try`s nest (one `exnref` local per level).
    depth: u32,
}

/// What the first pass tracks per open frame.
enum Scan {
    Other,
    /// A `try` starting at this operator; in its handlers once `catch` was seen.
    Try {
        at: usize,
        handling: bool,
    },
}

/// The plan of the `try` at operator `at` (every `try` gets one when the scan meets it).
fn planned(tries: &mut HashMap<usize, TryPlan>, at: usize) -> Result<&mut TryPlan, String> {
    tries
        .get_mut(&at)
        .ok_or_else(|| format!("no `try` at operator {at}"))
}

fn plan(ops: &[Operator<'_>]) -> Result<FuncPlan, String> {
    let mut p = FuncPlan::default();
    // The function's own frame is the bottom `Other`.
    let mut frames = vec![Scan::Other];
    let mut depth = 0u32;
    for (i, op) in ops.iter().enumerate() {
        match op {
            Operator::Block { .. }
            | Operator::Loop { .. }
            | Operator::If { .. }
            | Operator::TryTable { .. } => frames.push(Scan::Other),
            Operator::Try { .. } => {
                frames.push(Scan::Try {
                    at: i,
                    handling: false,
                });
                p.tries.insert(i, TryPlan::default());
                depth += 1;
                p.depth = p.depth.max(depth);
            }
            Operator::Catch { .. } | Operator::CatchAll => {
                let Some(Scan::Try { at, handling }) = frames.last_mut() else {
                    return Err("a `catch` outside a `try`".into());
                };
                *handling = true;
                let tag = match op {
                    Operator::Catch { tag_index } => Some(*tag_index),
                    _ => None,
                };
                planned(&mut p.tries, *at)?.handlers.push(tag);
            }
            Operator::Delegate { relative_depth } => {
                let Some(Scan::Try { at, .. }) = frames.pop() else {
                    return Err("a `delegate` outside a `try`".into());
                };
                depth -= 1;
                let named = frames
                    .len()
                    .checked_sub(1 + *relative_depth as usize)
                    .ok_or("a `delegate` past the function's frames")?;
                let target = frames[..=named]
                    .iter()
                    .rev()
                    .find_map(|f| match f {
                        Scan::Try {
                            at,
                            handling: false,
                        } => Some(Target::Try(*at)),
                        _ => None,
                    })
                    .unwrap_or(Target::Caller);
                planned(&mut p.tries, at)?.delegate = Some(target);
            }
            Operator::End => {
                if let Some(Scan::Try { .. }) = frames.pop() {
                    depth -= 1;
                }
            }
            _ => {}
        }
    }
    // A delegate into a `try` that itself delegates goes where that one does.
    let firsts: Vec<(usize, Target)> = p
        .tries
        .iter()
        .filter_map(|(&at, t)| t.delegate.map(|d| (at, d)))
        .collect();
    for (at, mut target) in firsts {
        for _ in 0..=p.tries.len() {
            match target {
                Target::Try(next) => match p.tries.get(&next).and_then(|t| t.delegate) {
                    Some(further) => target = further,
                    None => break,
                },
                Target::Caller => break,
            }
        }
        planned(&mut p.tries, at)?.delegate = Some(target);
        match target {
            Target::Try(t) => planned(&mut p.tries, t)?.delegated_to = true,
            Target::Caller => p.to_caller = true,
        }
    }
    Ok(p)
}

/// An open frame of the original code, and the block of the translation a branch to it
/// targets (numbered from the function's own frame, 0).
enum Frame {
    Plain {
        target: u32,
    },
    Try {
        /// The operator it starts at.
        start: usize,
        /// The `try_table`.
        table: u32,
        /// The block after all handlers (`None` for a `try` without handlers).
        done: Option<u32>,
        /// The block a delegated exception leaves, inside the `try_table`.
        delegated: Option<u32>,
        /// Handlers entered so far (0: still in the body).
        handling: usize,
        /// Nesting depth: which `exnref` local its handlers keep the exception in.
        level: u32,
    },
}

impl Frame {
    fn target(&self) -> u32 {
        match self {
            Frame::Plain { target } => *target,
            Frame::Try {
                table,
                done,
                handling,
                ..
            } => match (handling, done) {
                (0, _) | (_, None) => *table,
                (_, Some(done)) => *done,
            },
        }
    }
}

struct Translator {
    s: Survey,
    /// Added types: `[] -> [params.., exnref]` per tag type with parameters.
    catch_types: HashMap<u32, u32>,
    /// Added types: `[] -> results` per function type with several results.
    result_types: HashMap<u32, u32>,
    /// The index of the function whose body comes next.
    next_body: u32,
}

impl Translator {
    fn new(s: Survey) -> Translator {
        let mut next = s.types.len() as u32;
        let mut catch_types = HashMap::new();
        for &t in &s.tags {
            let has_params = matches!(s.types.get(t as usize), Some(Some((p, _))) if !p.is_empty());
            if has_params && !catch_types.contains_key(&t) {
                catch_types.insert(t, next);
                next += 1;
            }
        }
        let mut result_types = HashMap::new();
        for &t in &s.funcs {
            let several = matches!(s.types.get(t as usize), Some(Some((_, r))) if r.len() > 1);
            if several && !result_types.contains_key(&t) {
                result_types.insert(t, next);
                next += 1;
            }
        }
        Translator {
            next_body: s.imported_funcs,
            s,
            catch_types,
            result_types,
        }
    }

    fn signature(
        &self,
        ty: u32,
    ) -> Result<&(Vec<wasmparser::ValType>, Vec<wasmparser::ValType>), String> {
        match self.s.types.get(ty as usize) {
            Some(Some(f)) => Ok(f),
            _ => Err(format!("type {ty} is not a function type")),
        }
    }

    /// The block type of a `catch_ref` handler of `tag`: the tag's values and the `exnref`.
    fn catch_block(&self, tag: u32) -> Result<BlockType, String> {
        let ty = *self
            .s
            .tags
            .get(tag as usize)
            .ok_or(format!("no tag {tag}"))?;
        Ok(match self.catch_types.get(&ty) {
            Some(&added) => BlockType::FunctionType(added),
            None => BlockType::Result(ValType::EXNREF),
        })
    }

    /// The block type that yields a function of type `ty`'s results.
    fn results_block(&mut self, ty: u32) -> Result<BlockType, String> {
        let (_, results) = self.signature(ty)?.clone();
        Ok(match (results.as_slice(), self.result_types.get(&ty)) {
            ([], _) => BlockType::Empty,
            ([one], _) => BlockType::Result(self.val_type(*one).map_err(|e| e.to_string())?),
            (_, Some(&added)) => BlockType::FunctionType(added),
            (_, None) => return Err(format!("no result type for type {ty}")),
        })
    }

    /// Checks a `try`'s block type takes no parameters.
    fn paramless(&self, bt: wasmparser::BlockType) -> Result<(), String> {
        if let wasmparser::BlockType::FuncType(ty) = bt {
            if !self.signature(ty)?.0.is_empty() {
                return Err("a `try` with block parameters is not supported".into());
            }
        }
        Ok(())
    }

    fn body(
        &mut self,
        func: wasmparser::FunctionBody<'_>,
    ) -> Result<wasm_encoder::Function, String> {
        let this = self.next_body;
        self.next_body += 1;
        let ty = *self
            .s
            .funcs
            .get((this - self.s.imported_funcs) as usize)
            .ok_or("more bodies than functions")?;
        let err = |e: wasmparser::BinaryReaderError| e.to_string();
        let mut locals = Vec::new();
        let mut exn_base = self.signature(ty)?.0.len() as u32;
        for pair in func.get_locals_reader().map_err(err)? {
            let (n, t) = pair.map_err(err)?;
            locals.push((n, self.val_type(t).map_err(|e| e.to_string())?));
            exn_base += n;
        }
        let mut reader = func.get_operators_reader().map_err(err)?;
        let mut ops = Vec::new();
        while !reader.eof() {
            ops.push(reader.read().map_err(err)?);
        }
        let plan = plan(&ops)?;
        if plan.depth > 0 {
            locals.push((plan.depth, ValType::EXNREF));
        }
        let mut f = wasm_encoder::Function::new(locals);
        let mut e = Emitter {
            f: &mut f,
            open: 1,
            frames: vec![Frame::Plain { target: 0 }],
            level: 0,
            exn_base,
            caller: None,
        };
        if plan.to_caller {
            let bt = self.results_block(ty)?;
            e.open_block(&Instruction::Block(bt));
            e.caller = Some(e.open_block(&Instruction::Block(BlockType::Result(ValType::EXNREF))));
        }
        for (i, op) in ops.into_iter().enumerate() {
            match op {
                Operator::Try { blockty } => {
                    self.paramless(blockty)?;
                    let bt = self.block_type(blockty).map_err(|e| e.to_string())?;
                    let p = plan.tries.get(&i).ok_or("a `try` the scan did not see")?;
                    let frame = if let Some(target) = p.delegate {
                        let label = match target {
                            Target::Try(t) => e.delegated_block(t)?,
                            Target::Caller => e.caller.ok_or("no caller block")?,
                        };
                        let catches = [Catch::AllRef {
                            label: e.rel(label),
                        }];
                        let table =
                            e.open_block(&Instruction::TryTable(bt, Cow::Borrowed(&catches)));
                        Frame::Try {
                            start: i,
                            table,
                            done: None,
                            delegated: None,
                            handling: 0,
                            level: e.level,
                        }
                    } else {
                        let done =
                            (!p.handlers.is_empty()).then(|| e.open_block(&Instruction::Block(bt)));
                        let mut blocks = vec![0; p.handlers.len()];
                        for (j, h) in p.handlers.iter().enumerate().rev() {
                            let hbt = match h {
                                Some(tag) => self.catch_block(*tag)?,
                                None => BlockType::Result(ValType::EXNREF),
                            };
                            blocks[j] = e.open_block(&Instruction::Block(hbt));
                        }
                        let catches: Vec<Catch> = p
                            .handlers
                            .iter()
                            .zip(&blocks)
                            .map(|(h, &b)| match h {
                                Some(tag) => Catch::OneRef {
                                    tag: *tag,
                                    label: e.rel(b),
                                },
                                None => Catch::AllRef { label: e.rel(b) },
                            })
                            .collect();
                        let table = e.open_block(&Instruction::TryTable(bt, Cow::Owned(catches)));
                        let delegated = p.delegated_to.then(|| {
                            e.open_block(&Instruction::Block(BlockType::Result(ValType::EXNREF)))
                        });
                        Frame::Try {
                            start: i,
                            table,
                            done,
                            delegated,
                            handling: 0,
                            level: e.level,
                        }
                    };
                    e.frames.push(frame);
                    e.level += 1;
                }
                Operator::Catch { .. } | Operator::CatchAll => e.next_handler()?,
                Operator::Delegate { .. } => {
                    e.close_body()?;
                    e.frames.pop();
                    e.level -= 1;
                }
                Operator::Rethrow { relative_depth } => {
                    let frame = e.frame(relative_depth)?;
                    let Frame::Try {
                        handling: 1..,
                        level,
                        ..
                    } = frame
                    else {
                        return Err("a `rethrow` outside a handler".into());
                    };
                    let local = exn_base + level;
                    e.f.instruction(&Instruction::LocalGet(local));
                    e.f.instruction(&Instruction::ThrowRef);
                }
                Operator::End => e.end()?,
                Operator::Block { blockty } => {
                    let bt = self.block_type(blockty).map_err(|e| e.to_string())?;
                    let target = e.open_block(&Instruction::Block(bt));
                    e.frames.push(Frame::Plain { target });
                }
                Operator::Loop { blockty } => {
                    let bt = self.block_type(blockty).map_err(|e| e.to_string())?;
                    let target = e.open_block(&Instruction::Loop(bt));
                    e.frames.push(Frame::Plain { target });
                }
                Operator::If { blockty } => {
                    let bt = self.block_type(blockty).map_err(|e| e.to_string())?;
                    let target = e.open_block(&Instruction::If(bt));
                    e.frames.push(Frame::Plain { target });
                }
                Operator::TryTable { try_table } => {
                    let bt = self.block_type(try_table.ty).map_err(|e| e.to_string())?;
                    let mut catches = Vec::new();
                    for c in try_table.catches {
                        catches.push(match c {
                            wasmparser::Catch::One { tag, label } => Catch::One {
                                tag,
                                label: e.branch(label)?,
                            },
                            wasmparser::Catch::OneRef { tag, label } => Catch::OneRef {
                                tag,
                                label: e.branch(label)?,
                            },
                            wasmparser::Catch::All { label } => Catch::All {
                                label: e.branch(label)?,
                            },
                            wasmparser::Catch::AllRef { label } => Catch::AllRef {
                                label: e.branch(label)?,
                            },
                        });
                    }
                    let target = e.open_block(&Instruction::TryTable(bt, Cow::Owned(catches)));
                    e.frames.push(Frame::Plain { target });
                }
                Operator::Br { relative_depth } => {
                    let d = e.branch(relative_depth)?;
                    e.f.instruction(&Instruction::Br(d));
                }
                Operator::BrIf { relative_depth } => {
                    let d = e.branch(relative_depth)?;
                    e.f.instruction(&Instruction::BrIf(d));
                }
                Operator::BrTable { targets } => {
                    let mut ds = Vec::new();
                    for t in targets.targets() {
                        ds.push(e.branch(t.map_err(err)?)?);
                    }
                    let default = e.branch(targets.default())?;
                    e.f.instruction(&Instruction::BrTable(Cow::Owned(ds), default));
                }
                Operator::BrOnNull { relative_depth } => {
                    let d = e.branch(relative_depth)?;
                    e.f.instruction(&Instruction::BrOnNull(d));
                }
                Operator::BrOnNonNull { relative_depth } => {
                    let d = e.branch(relative_depth)?;
                    e.f.instruction(&Instruction::BrOnNonNull(d));
                }
                op @ (Operator::BrOnCast { .. } | Operator::BrOnCastFail { .. }) => {
                    let (Operator::BrOnCast { relative_depth, .. }
                    | Operator::BrOnCastFail { relative_depth, .. }) = op
                    else {
                        unreachable!()
                    };
                    let d = e.branch(relative_depth)?;
                    let ins = self.instruction(op).map_err(|e| e.to_string())?;
                    e.f.instruction(&match ins {
                        Instruction::BrOnCast {
                            from_ref_type,
                            to_ref_type,
                            ..
                        } => Instruction::BrOnCast {
                            relative_depth: d,
                            from_ref_type,
                            to_ref_type,
                        },
                        Instruction::BrOnCastFail {
                            from_ref_type,
                            to_ref_type,
                            ..
                        } => Instruction::BrOnCastFail {
                            relative_depth: d,
                            from_ref_type,
                            to_ref_type,
                        },
                        other => other,
                    });
                }
                other => {
                    let ins = self.instruction(other).map_err(|e| e.to_string())?;
                    e.f.instruction(&ins);
                }
            }
        }
        Ok(f)
    }
}

/// The second pass's state: the translation written so far and its open blocks.
struct Emitter<'f> {
    f: &'f mut wasm_encoder::Function,
    /// Blocks open in the translation, the function's own frame included.
    open: u32,
    /// The original code's open frames, the function's own first.
    frames: Vec<Frame>,
    /// How many `try`s are open.
    level: u32,
    /// The first added `exnref` local.
    exn_base: u32,
    /// The block exceptions delegated to the caller leave.
    caller: Option<u32>,
}

impl Emitter<'_> {
    /// Writes a block-opening instruction; returns the block's number.
    fn open_block(&mut self, ins: &Instruction<'_>) -> u32 {
        self.f.instruction(ins);
        self.open += 1;
        self.open - 1
    }

    fn close(&mut self) {
        self.f.instruction(&Instruction::End);
        self.open -= 1;
    }

    /// The relative depth of block `target` from here.
    fn rel(&self, target: u32) -> u32 {
        self.open - 1 - target
    }

    fn frame(&self, relative_depth: u32) -> Result<&Frame, String> {
        self.frames
            .len()
            .checked_sub(1 + relative_depth as usize)
            .map(|i| &self.frames[i])
            .ok_or_else(|| format!("a branch past the function's frames ({relative_depth})"))
    }

    /// The translated relative depth of an original branch.
    fn branch(&self, relative_depth: u32) -> Result<u32, String> {
        Ok(self.rel(self.frame(relative_depth)?.target()))
    }

    /// The delegation block of the open `try` that starts at operator `at`.
    fn delegated_block(&self, at: usize) -> Result<u32, String> {
        self.frames
            .iter()
            .find_map(|f| match f {
                Frame::Try {
                    start,
                    delegated: Some(d),
                    handling: 0,
                    ..
                } if *start == at => Some(*d),
                _ => None,
            })
            .ok_or_else(|| "a `delegate` to a `try` that is not open".to_string())
    }

    /// Ends the body of the innermost `try`: its delegation block (if any) rethrows inside
    /// the `try_table`, which closes.
    fn close_body(&mut self) -> Result<(), String> {
        let Some(Frame::Try {
            table, delegated, ..
        }) = self.frames.last()
        else {
            return Err("a `catch` or `delegate` outside a `try`".into());
        };
        let (table, delegated) = (*table, *delegated);
        if delegated.is_some() {
            let d = self.rel(table);
            self.f.instruction(&Instruction::Br(d));
            self.close();
            self.f.instruction(&Instruction::ThrowRef);
        }
        self.close();
        Ok(())
    }

    /// `catch` or `catch_all`: the previous part (body or handler) goes to `$done`, and the
    /// next handler's block ends, leaving the tag's values with the exception kept aside.
    fn next_handler(&mut self) -> Result<(), String> {
        let handling = match self.frames.last() {
            Some(Frame::Try { handling, .. }) => *handling,
            _ => return Err("a `catch` outside a `try`".into()),
        };
        if handling == 0 {
            self.close_body()?;
        }
        let Some(Frame::Try {
            done: Some(done),
            level,
            handling,
            ..
        }) = self.frames.last_mut()
        else {
            return Err("a `catch` of a `try` planned without handlers".into());
        };
        *handling += 1;
        let (done, level) = (*done, *level);
        let d = self.rel(done);
        self.f.instruction(&Instruction::Br(d));
        self.close();
        self.f
            .instruction(&Instruction::LocalSet(self.exn_base + level));
        Ok(())
    }

    fn end(&mut self) -> Result<(), String> {
        match self.frames.pop() {
            Some(Frame::Plain { .. }) if self.frames.is_empty() => {
                // The function's end: exceptions delegated to the caller are thrown again
                // outside every handler.
                if self.caller.is_some() {
                    self.f.instruction(&Instruction::Br(self.open - 2));
                    self.close();
                    self.f.instruction(&Instruction::ThrowRef);
                    self.close();
                }
                self.f.instruction(&Instruction::End);
            }
            Some(Frame::Plain { .. }) => self.close(),
            Some(frame @ Frame::Try { .. }) => {
                let Frame::Try { handling, done, .. } = frame else {
                    unreachable!()
                };
                self.frames.push(frame);
                if handling == 0 {
                    self.close_body()?;
                }
                if done.is_some() {
                    self.close();
                }
                self.frames.pop();
                self.level -= 1;
            }
            None => return Err("an `end` past the function's end".into()),
        }
        Ok(())
    }
}

impl Reencode for Translator {
    type Error = String;

    fn parse_type_section(
        &mut self,
        types: &mut wasm_encoder::TypeSection,
        section: wasmparser::TypeSectionReader<'_>,
    ) -> Result<(), ReencodeError<Self::Error>> {
        wasm_encoder::reencode::utils::parse_type_section(self, types, section)?;
        let mut added: Vec<(u32, Vec<ValType>, Vec<ValType>)> = Vec::new();
        let catch_types: Vec<(u32, u32)> = self.catch_types.iter().map(|(&a, &b)| (a, b)).collect();
        for (ty, index) in catch_types {
            let (params, _) = self
                .signature(ty)
                .map_err(ReencodeError::UserError)?
                .clone();
            let mut results = Vec::new();
            for p in params {
                results.push(self.val_type(p)?);
            }
            results.push(ValType::EXNREF);
            added.push((index, Vec::new(), results));
        }
        let result_types: Vec<(u32, u32)> =
            self.result_types.iter().map(|(&a, &b)| (a, b)).collect();
        for (ty, index) in result_types {
            let (_, rs) = self
                .signature(ty)
                .map_err(ReencodeError::UserError)?
                .clone();
            let mut results = Vec::new();
            for r in rs {
                results.push(self.val_type(r)?);
            }
            added.push((index, Vec::new(), results));
        }
        added.sort_by_key(|a| a.0);
        for (_, params, results) in added {
            types.ty().function(params, results);
        }
        Ok(())
    }

    fn parse_function_body(
        &mut self,
        code: &mut wasm_encoder::CodeSection,
        func: wasmparser::FunctionBody<'_>,
    ) -> Result<(), ReencodeError<Self::Error>> {
        let f = self.body(func).map_err(ReencodeError::UserError)?;
        code.function(&f);
        Ok(())
    }

    fn parse_custom_section(
        &mut self,
        module: &mut wasm_encoder::Module,
        section: wasmparser::CustomSectionReader<'_>,
    ) -> Result<(), ReencodeError<Self::Error>> {
        // Code offsets change, so DWARF no longer holds.
        if section.name().starts_with(".debug") {
            return Ok(());
        }
        wasm_encoder::reencode::utils::parse_custom_section(self, module, section)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wasmtime::{Config, Engine, Instance, Module, Store};

    fn engine() -> Engine {
        let mut c = Config::new();
        c.wasm_exceptions(true);
        c.wasm_gc(true);
        c.wasm_function_references(true);
        Engine::new(&c).unwrap()
    }

    /// Translates `wat` and runs its export `run` (no parameters, one i32 result).
    fn run(wat: &str) -> i32 {
        let wasm = wat::parse_str(wat).unwrap();
        wasmparser::Validator::new_with_features(WasmFeatures::all())
            .validate_all(&wasm)
            .expect("the test module is valid");
        let out = translate(&wasm).unwrap();
        assert!(matches!(out, Cow::Owned(_)), "nothing was translated");
        let engine = engine();
        let module = Module::new(&engine, &*out).unwrap_or_else(|e| panic!("{e:#}"));
        let mut store = Store::new(&engine, ());
        let instance = Instance::new(&mut store, &module, &[]).unwrap();
        let f = instance
            .get_typed_func::<(), i32>(&mut store, "run")
            .unwrap();
        f.call(&mut store, ()).unwrap()
    }

    #[test]
    fn a_tag_handler_gets_the_thrown_values() {
        let r = run(r#"(module (tag $e (param i32 i32))
            (func $thrower (throw $e (i32.const 40) (i32.const 2)))
            (func (export "run") (result i32)
              try (result i32)
                call $thrower
                i32.const -1
              catch $e
                i32.add
              end))"#);
        assert_eq!(r, 42);
    }

    #[test]
    fn handlers_are_tried_in_order_and_catch_all_takes_the_rest() {
        let r = run(
            r#"(module (tag $a (param i32)) (tag $b) (tag $c (param i64))
            (func $throw (param i32)
              (if (i32.eqz (local.get 0)) (then (throw $a (i32.const 1))))
              (if (i32.eq (local.get 0) (i32.const 1)) (then (throw $b)))
              (throw $c (i64.const 7)))
            (func $one (param i32) (result i32)
              try (result i32)
                local.get 0
                call $throw
                i32.const 0
              catch $a
                i32.const 10
                i32.add
              catch $b
                i32.const 20
              catch_all
                i32.const 30
              end)
            (func (export "run") (result i32)
              (i32.add (i32.add (call $one (i32.const 0)) (call $one (i32.const 1)))
                       (call $one (i32.const 2)))))"#,
        );
        assert_eq!(r, 11 + 20 + 30);
    }

    #[test]
    fn rethrow_from_a_nested_handler_reaches_the_outer_one() {
        let r = run(r#"(module (tag $e (param i32))
            (func (export "run") (result i32)
              try (result i32)
                try
                  i32.const 5
                  throw $e
                catch $e
                  drop
                  try
                    i32.const 6
                    throw $e
                  catch $e
                    drop
                    ;; rethrows the first exception (5), not the second
                    rethrow 1
                  end
                end
                i32.const -1
              catch $e
              end))"#);
        assert_eq!(r, 5);
    }

    #[test]
    fn delegate_skips_the_handlers_between() {
        let r = run(r#"(module (tag $e (param i32))
            (func (export "run") (result i32)
              try (result i32)
                block
                  try
                    try
                      i32.const 3
                      throw $e
                    delegate 2
                  catch $e
                    ;; skipped: the delegate names the outer try
                    drop
                  end
                end
                i32.const -1
              catch $e
                i32.const 100
                i32.add
              end))"#);
        assert_eq!(r, 103);
    }

    #[test]
    fn delegate_to_the_caller_leaves_the_function() {
        let r = run(r#"(module (tag $e (param i32))
            (func $inner (result i32)
              try (result i32)
                try
                  i32.const 9
                  throw $e
                delegate 1
                i32.const -1
              catch $e
                ;; skipped: delegated to the caller
              end)
            (func (export "run") (result i32)
              try (result i32)
                call $inner
              catch $e
                i32.const 1
                i32.add
              end))"#);
        assert_eq!(r, 10);
    }

    #[test]
    fn a_delegate_into_a_delegating_try_follows_it() {
        let r = run(r#"(module (tag $e (param i32))
            (func (export "run") (result i32)
              try (result i32)
                try
                  try
                    try
                      i32.const 4
                      throw $e
                    delegate 1
                  catch $e
                    drop
                  end
                delegate 0
                i32.const -1
              catch $e
              end))"#);
        assert_eq!(r, 4);
    }

    #[test]
    fn branches_out_of_bodies_and_handlers_keep_their_targets() {
        let r = run(r#"(module (tag $e)
            (func $f (param i32) (result i32)
              block $out (result i32)
                try (result i32)
                  i32.const 50
                  local.get 0
                  br_if 1
                  drop
                  block $x
                    block $y
                      local.get 0
                      br_table $y $x
                    end
                    throw $e
                  end
                  i32.const 0
                catch_all
                  i32.const 60
                  br 1
                end
              end
              i32.const 1
              i32.add)
            (func $g (result i32)
              try (result i32)
                throw $e
              catch_all
                i32.const 70
                br 0
              end)
            (func (export "run") (result i32)
              (i32.add (i32.add (call $f (i32.const 1)) (call $f (i32.const 0)))
                       (call $g))))"#);
        assert_eq!(r, 51 + 61 + 70);
    }

    #[test]
    fn modules_without_legacy_instructions_are_left_alone() {
        let wasm = wat::parse_str(
            r#"(module (tag $e) (func (export "run") (result i32)
                 block $h
                   try_table (catch_all $h) throw $e end
                 end
                 i32.const 1))"#,
        )
        .unwrap();
        assert!(matches!(translate(&wasm).unwrap(), Cow::Borrowed(_)));
    }

    #[test]
    fn a_try_with_parameters_is_refused_by_name() {
        let wasm = wat::parse_str(
            r#"(module (type $t (func (param i32) (result i32)))
                 (func (export "run") (result i32)
                   i32.const 1
                   try (type $t) catch_all i32.const 2 end))"#,
        )
        .unwrap();
        let e = translate(&wasm).unwrap_err();
        assert!(e.0.contains("block parameters"), "{e}");
    }
}

/// The translation against a model of the legacy semantics: random functions of nested
/// blocks, ifs, loops, `try`s with handlers, `delegate`s, branches, throws, rethrows, calls
/// and returns, each leaving a trace of marks; the translated module, run by the engine,
/// must leave the same trace and let the same exception escape.
#[cfg(test)]
mod model {
    use super::*;
    use proptest::prelude::*;
    use wasm_encoder::{
        CodeSection, EntityType, ExportKind, ExportSection, FunctionSection, ImportSection,
        Module as Encoded, TagKind, TagSection, TagType, TypeSection,
    };
    use wasmtime::{Config, Engine, Func, Instance, Module, Store};

    #[derive(Clone, Debug)]
    enum Stmt {
        Mark(i32),
        Block(Vec<Stmt>),
        /// Entered once: no branch targets it.
        Loop(Vec<Stmt>),
        If(bool, Vec<Stmt>, Vec<Stmt>),
        /// Body, then handlers: `Some(tag)` or `None` for catch_all.
        Try(Vec<Stmt>, Vec<(Option<u32>, Vec<Stmt>)>),
        Delegate(Vec<Stmt>, u32),
        Br(u32),
        BrIf(bool, u32),
        Throw(u32),
        Rethrow(u32),
        Call(u32),
        Return,
    }

    /// What a label of the generator's context is.
    #[derive(Clone, Copy, PartialEq)]
    enum Label {
        Plain,
        Loop,
        TryBody,
        Handler,
    }

    struct Gen {
        state: u64,
        marks: i32,
    }

    impl Gen {
        fn next(&mut self, n: u32) -> u32 {
            self.state ^= self.state << 13;
            self.state ^= self.state >> 7;
            self.state ^= self.state << 17;
            (self.state % u64::from(n)) as u32
        }

        fn mark(&mut self) -> Stmt {
            self.marks += 1;
            Stmt::Mark(self.marks)
        }

        /// A statement list inside `labels` (innermost last), in function `func`.
        fn stmts(&mut self, labels: &mut Vec<Label>, depth: u32, func: u32) -> Vec<Stmt> {
            let n = self.next(4);
            let mut out = vec![self.mark()];
            for _ in 0..n {
                out.push(self.stmt(labels, depth, func));
            }
            out
        }

        fn stmt(&mut self, labels: &mut Vec<Label>, depth: u32, func: u32) -> Stmt {
            let nested = depth < 4;
            loop {
                match self.next(14) {
                    0 => return self.mark(),
                    1 | 2 if nested => {
                        let kind = if self.next(4) == 0 {
                            Label::Loop
                        } else {
                            Label::Plain
                        };
                        labels.push(kind);
                        let body = self.stmts(labels, depth + 1, func);
                        labels.pop();
                        return match kind {
                            Label::Loop => Stmt::Loop(body),
                            _ => Stmt::Block(body),
                        };
                    }
                    3 if nested => {
                        labels.push(Label::Plain);
                        let a = self.stmts(labels, depth + 1, func);
                        let b = self.stmts(labels, depth + 1, func);
                        labels.pop();
                        return Stmt::If(self.next(2) == 0, a, b);
                    }
                    4..=6 if nested => {
                        labels.push(Label::TryBody);
                        let body = self.stmts(labels, depth + 1, func);
                        labels.pop();
                        if self.next(4) == 0 {
                            // The delegate's label is counted outside the try.
                            let d = self.next(labels.len() as u32 + 1);
                            return Stmt::Delegate(body, d);
                        }
                        let mut handlers = Vec::new();
                        for _ in 0..self.next(3) {
                            handlers.push(Some(self.next(2)));
                        }
                        if self.next(2) == 0 {
                            handlers.push(None);
                        }
                        let mut hs = Vec::new();
                        for &tag in &handlers {
                            labels.push(Label::Handler);
                            hs.push((tag, self.stmts(labels, depth + 1, func)));
                            labels.pop();
                        }
                        return Stmt::Try(body, hs);
                    }
                    7 | 8 => {
                        // Any label but a loop's (the function's own counts: a return).
                        let d = self.next(labels.len() as u32 + 1);
                        let i = labels.len() as i64 - 1 - i64::from(d);
                        if i >= 0 && labels[i as usize] == Label::Loop {
                            continue;
                        }
                        return if self.next(2) == 0 {
                            Stmt::Br(d)
                        } else {
                            Stmt::BrIf(self.next(2) == 0, d)
                        };
                    }
                    9 | 10 => return Stmt::Throw(self.next(2)),
                    11 => {
                        let handlers: Vec<u32> = (0..labels.len() as u32)
                            .filter(|&d| labels[labels.len() - 1 - d as usize] == Label::Handler)
                            .collect();
                        if handlers.is_empty() {
                            continue;
                        }
                        return Stmt::Rethrow(handlers[self.next(handlers.len() as u32) as usize]);
                    }
                    12 if func > 0 => return Stmt::Call(self.next(func)),
                    13 => return Stmt::Return,
                    _ => {}
                }
            }
        }
    }

    // Function indices: 0 is the imported `mark`; generated function k is k + 1.
    fn encode(funcs: &[Vec<Stmt>]) -> Vec<u8> {
        let mut types = TypeSection::new();
        types.ty().function([ValType::I32], []); // 0: mark, tag 1
        types.ty().function([], []); // 1: functions, tag 0
        let mut imports = ImportSection::new();
        imports.import("m", "mark", EntityType::Function(0));
        let mut fs = FunctionSection::new();
        let mut tags = TagSection::new();
        tags.tag(TagType {
            kind: TagKind::Exception,
            func_type_idx: 1,
        });
        tags.tag(TagType {
            kind: TagKind::Exception,
            func_type_idx: 0,
        });
        let mut code = CodeSection::new();
        for body in funcs {
            fs.function(1);
            let mut f = wasm_encoder::Function::new([]);
            emit(&mut f, body);
            f.instruction(&Instruction::End);
            code.function(&f);
        }
        let mut exports = ExportSection::new();
        exports.export("run", ExportKind::Func, funcs.len() as u32);
        let mut m = Encoded::new();
        m.section(&types)
            .section(&imports)
            .section(&fs)
            .section(&tags)
            .section(&exports)
            .section(&code);
        m.finish()
    }

    fn emit(f: &mut wasm_encoder::Function, stmts: &[Stmt]) {
        for s in stmts {
            match s {
                Stmt::Mark(n) => {
                    f.instruction(&Instruction::I32Const(*n));
                    f.instruction(&Instruction::Call(0));
                }
                Stmt::Block(b) | Stmt::Loop(b) => {
                    f.instruction(&if matches!(s, Stmt::Loop(_)) {
                        Instruction::Loop(BlockType::Empty)
                    } else {
                        Instruction::Block(BlockType::Empty)
                    });
                    emit(f, b);
                    f.instruction(&Instruction::End);
                }
                Stmt::If(c, a, b) => {
                    f.instruction(&Instruction::I32Const(i32::from(*c)));
                    f.instruction(&Instruction::If(BlockType::Empty));
                    emit(f, a);
                    f.instruction(&Instruction::Else);
                    emit(f, b);
                    f.instruction(&Instruction::End);
                }
                Stmt::Try(body, handlers) => {
                    f.instruction(&Instruction::Try(BlockType::Empty));
                    emit(f, body);
                    for (tag, h) in handlers {
                        match tag {
                            Some(t) => {
                                f.instruction(&Instruction::Catch(*t));
                                if *t == 1 {
                                    f.instruction(&Instruction::Drop);
                                }
                            }
                            None => {
                                f.instruction(&Instruction::CatchAll);
                            }
                        }
                        emit(f, h);
                    }
                    f.instruction(&Instruction::End);
                }
                Stmt::Delegate(body, d) => {
                    f.instruction(&Instruction::Try(BlockType::Empty));
                    emit(f, body);
                    f.instruction(&Instruction::Delegate(*d));
                }
                Stmt::Br(d) => {
                    f.instruction(&Instruction::Br(*d));
                }
                Stmt::BrIf(c, d) => {
                    f.instruction(&Instruction::I32Const(i32::from(*c)));
                    f.instruction(&Instruction::BrIf(*d));
                }
                Stmt::Throw(t) => {
                    if *t == 1 {
                        f.instruction(&Instruction::I32Const(5));
                    }
                    f.instruction(&Instruction::Throw(*t));
                }
                Stmt::Rethrow(d) => {
                    f.instruction(&Instruction::Rethrow(*d));
                }
                Stmt::Call(k) => {
                    f.instruction(&Instruction::Call(k + 1));
                }
                Stmt::Return => {
                    f.instruction(&Instruction::Return);
                }
            }
        }
    }

    /// An exception in the model: its tag and which throw made it.
    #[derive(Clone, Copy, Debug, PartialEq)]
    struct Exn {
        tag: u32,
        id: u32,
    }

    enum Out {
        Normal,
        Branch(u32),
        Return,
        Throw(Exn),
        /// Delegated to the label this many levels further out.
        Delegated(Exn, u32),
    }

    struct Machine<'a> {
        funcs: &'a [Vec<Stmt>],
        trace: Vec<i32>,
        throws: u32,
    }

    impl Machine<'_> {
        /// Runs function `k`: `Err` when an exception leaves it.
        fn call(&mut self, k: u32) -> Result<(), Exn> {
            let funcs = self.funcs;
            match self.block(&funcs[k as usize], &mut Vec::new()) {
                Out::Throw(e) | Out::Delegated(e, _) => Err(e),
                _ => Ok(()),
            }
        }

        /// A label's contents: what leaves it, as seen outside the label.
        fn labelled(&mut self, out: Out) -> Out {
            match out {
                Out::Branch(0) => Out::Normal,
                Out::Branch(d) => Out::Branch(d - 1),
                // Arrived: thrown again here, outward (a try body handles it before this).
                Out::Delegated(e, 0) => Out::Throw(e),
                Out::Delegated(e, d) => Out::Delegated(e, d - 1),
                other => other,
            }
        }

        fn block(&mut self, stmts: &[Stmt], caught: &mut Vec<Option<Exn>>) -> Out {
            for s in stmts {
                let out = self.stmt(s, caught);
                if !matches!(out, Out::Normal) {
                    return out;
                }
            }
            Out::Normal
        }

        fn stmt(&mut self, s: &Stmt, caught: &mut Vec<Option<Exn>>) -> Out {
            match s {
                Stmt::Mark(n) => {
                    self.trace.push(*n);
                    Out::Normal
                }
                Stmt::Block(b) | Stmt::Loop(b) => {
                    caught.push(None);
                    let out = self.block(b, caught);
                    caught.pop();
                    self.labelled(out)
                }
                Stmt::If(c, a, b) => {
                    caught.push(None);
                    let out = self.block(if *c { a } else { b }, caught);
                    caught.pop();
                    self.labelled(out)
                }
                Stmt::Try(body, handlers) => {
                    caught.push(None);
                    let out = self.block(body, caught);
                    caught.pop();
                    let exn = match out {
                        Out::Throw(e) | Out::Delegated(e, 0) => e,
                        other => return self.labelled(other),
                    };
                    let Some((_, h)) = handlers
                        .iter()
                        .find(|(t, _)| t.is_none_or(|t| t == exn.tag))
                    else {
                        return Out::Throw(exn);
                    };
                    caught.push(Some(exn));
                    let out = self.block(h, caught);
                    caught.pop();
                    self.labelled(out)
                }
                Stmt::Delegate(body, d) => {
                    caught.push(None);
                    let out = self.block(body, caught);
                    caught.pop();
                    match out {
                        Out::Throw(e) | Out::Delegated(e, 0) => Out::Delegated(e, *d),
                        other => self.labelled(other),
                    }
                }
                Stmt::Br(d) => Out::Branch(*d),
                Stmt::BrIf(c, d) => {
                    if *c {
                        Out::Branch(*d)
                    } else {
                        Out::Normal
                    }
                }
                Stmt::Throw(tag) => {
                    self.throws += 1;
                    Out::Throw(Exn {
                        tag: *tag,
                        id: self.throws,
                    })
                }
                Stmt::Rethrow(d) => {
                    let e = caught[caught.len() - 1 - *d as usize].expect("a handler");
                    Out::Throw(e)
                }
                Stmt::Call(k) => match self.call(*k) {
                    Ok(()) => Out::Normal,
                    Err(e) => Out::Throw(e),
                },
                Stmt::Return => Out::Return,
            }
        }
    }

    fn check(seed: u64) {
        let mut g = Gen {
            state: seed | 1,
            marks: 0,
        };
        let count = 1 + g.next(3);
        let funcs: Vec<Vec<Stmt>> = (0..count).map(|k| g.stmts(&mut Vec::new(), 0, k)).collect();
        let wasm = encode(&funcs);
        wasmparser::Validator::new_with_features(WasmFeatures::all())
            .validate_all(&wasm)
            .unwrap_or_else(|e| panic!("generated module invalid: {e}\n{funcs:#?}"));

        let mut m = Machine {
            funcs: &funcs,
            trace: Vec::new(),
            throws: 0,
        };
        let expected = m.call(count - 1);

        let out = translate(&wasm).unwrap();
        let mut c = Config::new();
        c.wasm_exceptions(true);
        let engine = Engine::new(&c).unwrap();
        let module = Module::new(&engine, &*out).unwrap_or_else(|e| panic!("{e:#}\n{funcs:#?}"));
        let mut store = Store::new(&engine, Vec::<i32>::new());
        let mark = Func::wrap(
            &mut store,
            |mut c: wasmtime::Caller<'_, Vec<i32>>, n: i32| c.data_mut().push(n),
        );
        let instance = Instance::new(&mut store, &module, &[mark.into()]).unwrap();
        let run = instance
            .get_typed_func::<(), ()>(&mut store, "run")
            .unwrap();
        let got = run.call(&mut store, ());
        assert_eq!(store.data(), &m.trace, "trace differs for\n{funcs:#?}");
        assert_eq!(
            got.is_err(),
            expected.is_err(),
            "escape differs ({got:?} vs {expected:?}) for\n{funcs:#?}"
        );
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]
        #[test]
        fn translated_code_behaves_as_the_legacy_semantics_say(seed in any::<u64>()) {
            check(seed);
        }
    }
}
