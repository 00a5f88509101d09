/* The offsets pyheap's layout holds, measured with offsetof/sizeof over CPython's own headers
 * (internal ones included). Built and run by measure.sh against pyenv's 3.10-3.12; its output
 * is measured.txt, which pyheap/layout.rs's tests compare with the tables. 3.10 installs no
 * header for its dict keys (Objects/dict-common.h): keys.py measures those in a live 3.10. */
#define Py_BUILD_CORE 1
#include <Python.h>
#include <frameobject.h>
#include <internal/pycore_runtime.h>
#include <internal/pycore_interp.h>
#include <internal/pycore_gc.h>
#include <internal/pycore_moduleobject.h>
#if PY_VERSION_HEX >= 0x030B0000
#include <internal/pycore_frame.h>
#include <internal/pycore_dict.h>
#endif
#include <stddef.h>
#include <stdio.h>

#define V(key, value) printf("%d.%d %s %zu\n", PY_MAJOR_VERSION, PY_MINOR_VERSION, key, (size_t)(value))
#define P(key, s, f) V(key, offsetof(s, f))

int main(void) {
    P("interp_gc", PyInterpreterState, gc);
#if PY_VERSION_HEX < 0x030C0000
    P("interp_modules", PyInterpreterState, modules);
#else
    P("interp_modules", PyInterpreterState, imports.modules);
#endif
    P("gc_generations", struct _gc_runtime_state, generations);
    V("gc_generation_size", sizeof(struct gc_generation));
    V("gc_head", sizeof(PyGC_Head));
    P("ht_cached_keys", PyHeapTypeObject, ht_cached_keys);
    P("tp_name", PyTypeObject, tp_name);
    P("tp_basicsize", PyTypeObject, tp_basicsize);
    P("tp_itemsize", PyTypeObject, tp_itemsize);
    P("tp_flags", PyTypeObject, tp_flags);
    P("tp_base", PyTypeObject, tp_base);
    P("tp_dict", PyTypeObject, tp_dict);
    P("tp_dictoffset", PyTypeObject, tp_dictoffset);
    P("tp_mro", PyTypeObject, tp_mro);
    P("dict_used", PyDictObject, ma_used);
    P("dict_keys", PyDictObject, ma_keys);
    P("dict_values", PyDictObject, ma_values);
    P("set_used", PySetObject, used);
    P("set_mask", PySetObject, mask);
    P("set_table", PySetObject, table);
    P("list_items", PyListObject, ob_item);
    P("list_allocated", PyListObject, allocated);
    P("tuple_items", PyTupleObject, ob_item);
    P("module_dict", PyModuleObject, md_dict);
    P("func_defaults", PyFunctionObject, func_defaults);
    P("func_closure", PyFunctionObject, func_closure);
    P("method_func", PyMethodObject, im_func);
    P("method_self", PyMethodObject, im_self);
    P("cell_ref", PyCellObject, ob_ref);
    P("bytearray_alloc", PyByteArrayObject, ob_alloc);
#if PY_VERSION_HEX < 0x030B0000
    /* 3.10: heap `PyFrameObject`s; names in three tuples, slots in that order. */
    P("frame_localsplus", PyFrameObject, f_localsplus);
    P("code_varnames", PyCodeObject, co_varnames);
    P("code_cellvars", PyCodeObject, co_cellvars);
    P("code_freevars", PyCodeObject, co_freevars);
#else
    P("frame_localsplus", _PyInterpreterFrame, localsplus);
    P("code_localsplusnames", PyCodeObject, co_localsplusnames);
    P("keys_log2_index_bytes", PyDictKeysObject, dk_log2_index_bytes);
    P("keys_kind", PyDictKeysObject, dk_kind);
    P("keys_nentries", PyDictKeysObject, dk_nentries);
    P("keys_indices", PyDictKeysObject, dk_indices);
#endif
    return 0;
}
