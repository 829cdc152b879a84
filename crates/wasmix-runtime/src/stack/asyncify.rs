//! The engine side of stack capture: an instance's asyncify entry points and mutable globals,
//! looked up once per instance with their types checked.

use wasmtime::{AsContextMut, Extern, Global, Instance, Mutability, TypedFunc, Val, ValType};

use super::snapshot;

/// Handles into one instance.
#[derive(Clone)]
pub(crate) struct Asyncify {
    pub start_unwind: TypedFunc<i32, ()>,
    pub stop_unwind: TypedFunc<(), ()>,
    pub start_rewind: TypedFunc<i32, ()>,
    pub stop_rewind: TypedFunc<(), ()>,
    pub stack_pointer: Global,
    /// Every exported mutable global of a plain number type, by export name.
    pub globals: Vec<(String, Global)>,
}

impl Asyncify {
    /// Looks the entry points up in `instance`; the error names what is missing or mistyped.
    pub fn find(mut store: impl AsContextMut, instance: Instance) -> Result<Asyncify, String> {
        let mut store = store.as_context_mut();
        fn func<P: wasmtime::WasmParams, R: wasmtime::WasmResults>(
            store: &mut wasmtime::StoreContextMut<'_, impl Sized>,
            instance: Instance,
            name: &str,
            shape: &str,
        ) -> Result<TypedFunc<P, R>, String> {
            let f = instance.get_func(&mut *store, name).ok_or_else(|| {
                format!("the module does not export `{name}` (is it asyncify-instrumented?)")
            })?;
            f.typed::<P, R>(&*store)
                .map_err(|_| format!("the module's `{name}` export is not a function {shape}"))
        }
        let start_unwind = func(&mut store, instance, "asyncify_start_unwind", "(i32)")?;
        let stop_unwind = func(&mut store, instance, "asyncify_stop_unwind", "()")?;
        let start_rewind = func(&mut store, instance, "asyncify_start_rewind", "(i32)")?;
        let stop_rewind = func(&mut store, instance, "asyncify_stop_rewind", "()")?;
        let mut globals = Vec::new();
        let mut stack_pointer = None;
        let exports: Vec<(String, Extern)> = instance
            .exports(&mut store)
            .map(|e| (e.name().to_owned(), e.into_extern()))
            .collect();
        for (name, ext) in exports {
            let Extern::Global(g) = ext else { continue };
            let ty = g.ty(&store);
            if ty.mutability() != Mutability::Var
                || !matches!(
                    ty.content(),
                    ValType::I32 | ValType::I64 | ValType::F32 | ValType::F64
                )
            {
                continue;
            }
            if name == "__stack_pointer" {
                if !matches!(ty.content(), ValType::I32) {
                    return Err("the module's `__stack_pointer` is not a mutable i32".into());
                }
                stack_pointer = Some(g);
            }
            globals.push((name, g));
        }
        let stack_pointer = stack_pointer.ok_or(
            "the module has no `__stack_pointer` global wasmix can find (export it, or keep \
             the name section)",
        )?;
        Ok(Asyncify {
            start_unwind,
            stop_unwind,
            start_rewind,
            stop_rewind,
            stack_pointer,
            globals,
        })
    }

    /// The shadow stack pointer.
    pub fn stack_pointer(&self, store: impl AsContextMut) -> u32 {
        match self.stack_pointer.get(store) {
            Val::I32(v) => v as u32,
            _ => 0,
        }
    }

    pub fn set_stack_pointer(&self, store: impl AsContextMut, sp: u32) -> wasmtime::Result<()> {
        self.stack_pointer.set(store, Val::I32(sp as i32))
    }

    /// The values of every mutable global.
    pub fn read_globals(&self, mut store: impl AsContextMut) -> Vec<(String, snapshot::Global)> {
        let mut store = store.as_context_mut();
        self.globals
            .iter()
            .filter_map(|(name, g)| {
                let v = match g.get(&mut store) {
                    Val::I32(v) => snapshot::Global::I32(v),
                    Val::I64(v) => snapshot::Global::I64(v),
                    Val::F32(v) => snapshot::Global::F32(v),
                    Val::F64(v) => snapshot::Global::F64(v),
                    _ => return None,
                };
                Some((name.clone(), v))
            })
            .collect()
    }

    /// Sets the globals `values` names; names this instance lacks are skipped.
    pub fn write_globals(
        &self,
        mut store: impl AsContextMut,
        values: &[(String, snapshot::Global)],
    ) -> wasmtime::Result<()> {
        let mut store = store.as_context_mut();
        for (name, value) in values {
            let Some((_, g)) = self.globals.iter().find(|(n, _)| n == name) else {
                continue;
            };
            let v = match *value {
                snapshot::Global::I32(v) => Val::I32(v),
                snapshot::Global::I64(v) => Val::I64(v),
                snapshot::Global::F32(v) => Val::F32(v),
                snapshot::Global::F64(v) => Val::F64(v),
            };
            // A value of another type than this instance's global is a mismatched snapshot.
            g.set(&mut store, v).map_err(|e| {
                wasmtime::Error::msg(format!("cannot restore global `{name}`: {e}"))
            })?;
        }
        Ok(())
    }
}
