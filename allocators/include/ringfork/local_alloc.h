// Process-local memory: ringfork's own private allocations come from mimalloc.
#pragma once

#include <mimalloc.h>

#include <string>

namespace ringfork {

// ringfork allocates its process-local bookkeeping (block-pool caches, containers) through
// mimalloc, explicitly, so it gets mimalloc's thread-local free lists without changing the
// allocator the rest of the program uses. Shared memory never comes from here: it comes from
// the SharedArena and the BlockPool of a segment.
//
// To make mimalloc the whole process's malloc/free/new/delete as well (often a large win for
// the many small allocations of parsers and workers), choose one, at your program's level:
//   - link mimalloc-override: the override build of mimalloc (the distribution's
//     libmimalloc.so, or CMake `mimalloc` built with MI_OVERRIDE=ON) as a direct dependency
//     of the executable, listed before libc (`-lmimalloc` on the program's own link line);
//   - or without relinking: `LD_PRELOAD=/usr/lib/x86_64-linux-gnu/libmimalloc.so ./prog`.
// ringfork never forces either: libringfork needs libmimalloc only indirectly, so the
// dynamic linker finds libc's malloc first and the host program's malloc is left alone.
// local_allocator_name() says which mimalloc ringfork itself uses; build_info() adds the
// rest of the build.
//
// Thread-safe; mimalloc's heaps are per thread, and a forked child keeps working heaps.
template <class T>
using LocalAllocator = mi_stl_allocator<T>;

// "mimalloc <major>.<minor>.<patch>" of the library actually loaded (not the header's).
std::string local_allocator_name();

}  // namespace ringfork
