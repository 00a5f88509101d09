/* The offsets the layout tables hold, measured with offsetof over CPython's own headers.
 * Built and run by measure.sh against each pyenv version; its output is measured.txt, which
 * layout/tests.rs compares with the tables (3.10-3.12) and with _Py_DebugOffsets (3.13). */
#define Py_BUILD_CORE 1
#include <Python.h>
#include <frameobject.h>
#include <internal/pycore_runtime.h>
#include <internal/pycore_interp.h>
#if PY_VERSION_HEX >= 0x030B0000
#include <internal/pycore_frame.h>
#endif
#include <stddef.h>
#include <stdio.h>

#define P(key, s, f) printf("%d.%d %s %zu\n", PY_MAJOR_VERSION, PY_MINOR_VERSION, key, offsetof(s, f))

int main(void) {
    P("runtime_interpreters_head", _PyRuntimeState, interpreters.head);
    P("interp_next", PyInterpreterState, next);
    P("tstate_next", PyThreadState, next);
    P("tstate_interp", PyThreadState, interp);
    P("code_firstlineno", PyCodeObject, co_firstlineno);
    P("code_filename", PyCodeObject, co_filename);
    P("code_name", PyCodeObject, co_name);
    P("code_linetable", PyCodeObject, co_linetable);
#if PY_VERSION_HEX < 0x030B0000
    P("interp_threads_head", PyInterpreterState, tstate_head);
    P("tstate_frame", PyThreadState, frame);
    P("tstate_native_thread_id", PyThreadState, thread_id);
    P("frame_code", PyFrameObject, f_code);
    P("frame_previous", PyFrameObject, f_back);
    P("frame_instr", PyFrameObject, f_lasti);
    printf("%d.%d code_adaptive %zu\n", PY_MAJOR_VERSION, PY_MINOR_VERSION, sizeof(PyCodeObject));
#else
    P("interp_threads_head", PyInterpreterState, threads.head);
    P("tstate_native_thread_id", PyThreadState, native_thread_id);
    P("frame_previous", _PyInterpreterFrame, previous);
    P("frame_owner", _PyInterpreterFrame, owner);
    P("code_qualname", PyCodeObject, co_qualname);
    P("code_adaptive", PyCodeObject, co_code_adaptive);
#if PY_VERSION_HEX < 0x030D0000
    P("tstate_frame", PyThreadState, cframe);
    P("cframe_current", _PyCFrame, current_frame);
    P("frame_code", _PyInterpreterFrame, f_code);
    P("frame_instr", _PyInterpreterFrame, prev_instr);
#else
    P("tstate_frame", PyThreadState, current_frame);
    P("frame_code", _PyInterpreterFrame, f_executable);
    P("frame_instr", _PyInterpreterFrame, instr_ptr);
#endif
#endif
    return 0;
}
