// run_fleet() on OpenMPI: scan here, gather the encoded partials (or failures) at rank 0.
#define OMPI_SKIP_MPICXX 1  // the C API only; the C++ bindings are deprecated
#include <mpi.h>
#include <sys/stat.h>

#include <algorithm>
#include <climits>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <string>
#include <vector>

#include "emit.h"
#include "fleet.h"

namespace logscan {
namespace {

// What one rank sends to rank 0.
struct RankOutcome {
  std::int32_t status = kExitOk;  // the rank's exit status
  bool fatal = false;             // no partial: the run cannot produce a report
  std::string host;
  std::vector<std::string> messages;  // for stderr, in order
  std::string partial;                // PartialReport::encode(), when not fatal
};

void put_u64(std::string& out, std::uint64_t value) {
  out.append(reinterpret_cast<const char*>(&value), sizeof value);
}
void put_text(std::string& out, const std::string& text) {
  put_u64(out, text.size());
  out += text;
}

std::string serialize(const RankOutcome& outcome) {
  std::string out;
  put_u64(out, static_cast<std::uint64_t>(static_cast<std::uint32_t>(outcome.status)));
  put_u64(out, outcome.fatal ? 1 : 0);
  put_text(out, outcome.host);
  put_u64(out, outcome.messages.size());
  for (const std::string& message : outcome.messages) put_text(out, message);
  put_text(out, outcome.partial);
  return out;
}

// The bytes come from this job's own ranks, but are checked all the same (rule 2).
RankOutcome deserialize(std::string_view in, int rank) {
  auto fail = [&] {
    return std::runtime_error("rank " + std::to_string(rank) + " sent a malformed result");
  };
  auto get_u64 = [&] {
    if (in.size() < 8) throw fail();
    std::uint64_t value;
    std::memcpy(&value, in.data(), 8);
    in.remove_prefix(8);
    return value;
  };
  auto get_text = [&] {
    const std::uint64_t n = get_u64();
    if (in.size() < n) throw fail();
    std::string text(in.substr(0, n));
    in.remove_prefix(n);
    return text;
  };
  RankOutcome outcome;
  outcome.status = static_cast<std::int32_t>(get_u64());
  outcome.fatal = get_u64() != 0;
  outcome.host = get_text();
  for (std::uint64_t n = get_u64(); n > 0; --n) outcome.messages.push_back(get_text());
  outcome.partial = get_text();
  if (!in.empty()) throw fail();
  return outcome;
}

// --mpi-split: every rank expands the same PATHs on the shared filesystem to the same sorted
// file list and takes its share, balanced by size (largest first to the least loaded rank).
// A path that cannot be listed goes to one rank as it is, so that exactly one rank names it.
std::vector<std::string> share_of(const std::vector<std::string>& paths, int rank, int ranks) {
  namespace fs = std::filesystem;
  std::vector<std::pair<std::uint64_t, std::string>> files;  // (size, path)
  for (const std::string& path : paths) {
    std::error_code error;
    if (fs::is_directory(path, error)) {
      for (fs::recursive_directory_iterator it(path, error), end; !error && it != end;
           it.increment(error)) {
        std::error_code size_error;
        if (it->is_regular_file(size_error))
          files.emplace_back(it->file_size(size_error), it->path().string());
      }
      if (!error) continue;
    }
    std::error_code size_error;
    const std::uint64_t size =
        fs::is_regular_file(path, size_error) ? fs::file_size(path, size_error) : 0;
    files.emplace_back(size_error ? 0 : size, path);
  }
  std::sort(files.begin(), files.end(), [](const auto& a, const auto& b) {
    return a.first != b.first ? a.first > b.first : a.second < b.second;
  });
  std::vector<std::uint64_t> load(static_cast<std::size_t>(ranks), 0);
  std::vector<std::string> mine;
  for (const auto& [size, path] : files) {
    const auto least = std::min_element(load.begin(), load.end()) - load.begin();
    load[static_cast<std::size_t>(least)] += size + 1;  // +1: empty files spread too
    if (least == rank) mine.push_back(path);
  }
  return mine;
}

RankOutcome scan_here(ringfork::Runtime& runtime, const Arguments& args, int rank, int ranks) {
  RankOutcome outcome;
  PipelineOptions options = args.pipeline;
  options.progress = options.progress && rank == 0;
  const std::vector<std::string> paths =
      args.fleet == Fleet::kMpiSplit ? share_of(args.inputs, rank, ranks) : args.inputs;
  try {
    if (paths.empty()) {
      outcome.partial = PartialReport().encode();  // more ranks than files: nothing to do
      return outcome;
    }
    PipelineResult result = scan_paths(runtime, paths, options);
    outcome.status = result.status;
    outcome.messages = std::move(result.skipped);
    outcome.partial = result.report.encode();
  } catch (const ScanFailed& failure) {
    outcome.status = failure.status();
    outcome.fatal = true;
    outcome.messages.push_back(failure.what());
  } catch (const std::exception& error) {
    outcome.status = kExitIoError;
    outcome.fatal = true;
    outcome.messages.push_back(error.what());
  }
  return outcome;
}

// Rank 0's half: every rank's outcome in, one report (or the failures) out.
int combine(std::vector<RankOutcome>& outcomes, const Arguments& args) {
  int status = kExitOk;
  bool fatal = false;
  for (std::size_t rank = 0; rank < outcomes.size(); ++rank) {
    const RankOutcome& outcome = outcomes[rank];
    for (const std::string& message : outcome.messages) {
      std::fprintf(stderr, "logscan: rank %zu on %s: %s\n", rank, outcome.host.c_str(),
                   message.c_str());
    }
    status = std::max(status, static_cast<int>(outcome.status));
    fatal = fatal || outcome.fatal;
  }
  if (fatal) {
    std::fprintf(stderr, "logscan: no report: the ranks above failed, so it would be incomplete\n");
    return status == kExitOk ? kExitIoError : status;
  }
  PartialReport total;
  for (RankOutcome& outcome : outcomes) total.merge(PartialReport::decode(outcome.partial));
  return emit_report(std::move(total), args, status);
}

}  // namespace

bool fleet_supported() noexcept { return true; }

int run_fleet(ringfork::Runtime& runtime, const Arguments& args, int& argc, char**& argv) {
  if (MPI_Init(&argc, &argv) != MPI_SUCCESS) {
    std::fprintf(stderr, "logscan: MPI_Init failed (run under mpirun)\n");
    return kExitIoError;
  }
  // Errors abort the job rather than return codes nobody checks: mpirun then ends every rank.
  MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_ARE_FATAL);
  int rank = 0, ranks = 1, host_length = 0;
  char host[MPI_MAX_PROCESSOR_NAME] = {};
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &ranks);
  MPI_Get_processor_name(host, &host_length);

  RankOutcome outcome = scan_here(runtime, args, rank, ranks);
  outcome.host.assign(host, static_cast<std::size_t>(host_length));
  std::string bytes = serialize(outcome);
  if (bytes.size() > INT_MAX) {  // MPI counts are ints; a partial that large is no longer small
    outcome = {.status = kExitIoError,
               .fatal = true,
               .host = outcome.host,
               .messages = {"partial report of " + std::to_string(bytes.size()) +
                            " bytes exceeds MPI's 2 GiB message"}};
    bytes = serialize(outcome);
  }
  const int length = static_cast<int>(bytes.size());
  std::vector<int> lengths(rank == 0 ? static_cast<std::size_t>(ranks) : 0);
  MPI_Gather(&length, 1, MPI_INT, lengths.data(), 1, MPI_INT, 0, MPI_COMM_WORLD);
  std::vector<int> displacements(lengths.size());
  std::size_t total = 0;
  for (std::size_t r = 0; r < lengths.size(); ++r) {
    displacements[r] = static_cast<int>(total);
    total += static_cast<std::size_t>(lengths[r]);
  }
  if (rank == 0 && total > INT_MAX) {
    std::fprintf(stderr, "logscan: the ranks' partial reports exceed MPI's 2 GiB gather\n");
    MPI_Abort(MPI_COMM_WORLD, kExitIoError);
  }
  std::string gathered(total, '\0');
  MPI_Gatherv(bytes.data(), length, MPI_BYTE, gathered.data(), lengths.data(), displacements.data(),
              MPI_BYTE, 0, MPI_COMM_WORLD);

  int status = outcome.status;
  if (rank == 0) {
    try {
      std::vector<RankOutcome> outcomes;
      for (std::size_t r = 0; r < lengths.size(); ++r) {
        outcomes.push_back(deserialize(
            std::string_view(gathered).substr(static_cast<std::size_t>(displacements[r]),
                                              static_cast<std::size_t>(lengths[r])),
            static_cast<int>(r)));
      }
      status = combine(outcomes, args);
    } catch (const std::exception& error) {
      std::fprintf(stderr, "logscan: %s\n", error.what());
      status = kExitIoError;
    }
  }
  // Every rank learns rank 0's verdict, so that mpirun's exit status is the run's.
  MPI_Bcast(&status, 1, MPI_INT, 0, MPI_COMM_WORLD);
  MPI_Finalize();
  return status;
}

}  // namespace logscan
