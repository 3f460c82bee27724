// The heap of logscan's processes: kept, and in transparent huge pages.
//
// A worker's heap grows to a few tens of MB (simdjson's and pugixml's buffers for the
// largest payloads, its report tables, each chunk's encoded partial), all of it touched for
// the first time in that worker, since workers are fresh processes. In 4 KiB pages that was
// ~6,500 page faults per worker per run, at ~13 us each in the VM this was measured on: about
// 8 % of a worker's CPU at -j 2 (perf stat task-clock, 1 GB corpus, by hand). In 2 MiB pages
// they are a few dozen.
#pragma once

namespace logscan {

// Call first thing in main, before the ringfork Runtime forks the template that the workers
// are forked from: they inherit the heap's settings and its huge-page advice.
void configure_heap() noexcept;

}  // namespace logscan
