// Fleet runs: `mpirun -np N logscan --mpi|--mpi-split [options] PATH...`. Every rank scans with
// its own worker processes, its partial report travels to rank 0 (MPI_Gatherv of the encoded
// partials), and rank 0 merges them and prints the one report. A rank that fails (a bad path,
// a dead worker) sends its failure instead, and rank 0 prints no report but each failure,
// naming the rank and its host; a rank that dies makes mpirun end the whole job.
#pragma once

#include "cli.h"
#include "ringfork/runtime.h"

namespace logscan {

// Whether this logscan was built with OpenMPI (an optional dependency).
bool fleet_supported() noexcept;

// Runs this process's part of a fleet run; returns the exit status. Without OpenMPI, prints
// how to get it and returns kExitBadInput.
int run_fleet(ringfork::Runtime& runtime, const Arguments& args, int& argc, char**& argv);

}  // namespace logscan
