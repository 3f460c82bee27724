// Process and Runtime: the Process API on both start methods, exit codes for every way a
// worker can end, misuse errors, no zombies, no orphans (the parent SIGKILLed with 16
// workers running), direct children outliving the thread that started them and started
// from inside a direct child, the spawn rate, and the two seed scenarios that hang in Python.
#include "ringfork/process.h"

#include <dirent.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <memory>
#include <optional>
#include <random>
#include <sstream>
#include <thread>

#include "ringfork/queue.h"
#include "runtime_main.h"
#include "test_support.h"

namespace ringfork {
namespace {

using namespace std::chrono_literals;

using testing::g_runtime;
const char* g_self_path = nullptr;

int sum_arguments(int base, std::string text, std::vector<int> values) {
  int total = base + static_cast<int>(text.size());
  for (int value : values) total += value;
  return total;
}

void throw_error(std::string message) { throw std::runtime_error(message); }

int crash_after_put(Queue<std::string> queue, int how) {
  queue.put("written before dying");
  switch (how) {
    case 0:
      // Sanitizers catch SIGSEGV to report it; restore the default so it kills us outright.
      ::signal(SIGSEGV, SIG_DFL);
      ::raise(SIGSEGV);
      break;
    case 1:
      std::abort();
    case 2:
      ::_exit(3);
    default:
      for (;;) ::pause();
  }
  return 0;
}

int sleep_forever() {
  for (;;) ::pause();
}

int times_seven(int value) { return value * 7 % 200; }

TEST(Process, RunsAFunctionWithArgumentsAndReportsItsResult) {
  Process process(*g_runtime, &sum_arguments, 10, std::string("abcd"), std::vector<int>{1, 2, 3});
  EXPECT_FALSE(process.is_alive());
  EXPECT_EQ(process.exitcode(), std::nullopt);
  process.start();
  EXPECT_GT(process.pid(), 0);
  EXPECT_NE(process.pid(), g_runtime->template_pid());
  ASSERT_TRUE(process.join(30s));
  EXPECT_FALSE(process.is_alive());
  EXPECT_EQ(process.exitcode(), 20);
}

TEST(Process, UncaughtExceptionGivesExitCodeOne) {
  Process process(*g_runtime, &throw_error, std::string("deliberate failure"));
  process.start();
  ASSERT_TRUE(process.join(30s));
  EXPECT_EQ(process.exitcode(), 1);
}

TEST(Process, ExitCodesForEveryWayAWorkerEndsAndItsDataSurvives) {
  const std::pair<int, int> cases[] = {{0, -SIGSEGV}, {1, -SIGABRT}, {2, 3}, {3, -SIGKILL}};
  for (const auto& [how, expected] : cases) {
    auto queue = Queue<std::string>::create(g_runtime->arena(), g_runtime->pool());
    Process process(*g_runtime, &crash_after_put, queue, how);
    process.start();
    if (how == 3) {
      // Let it put first, then SIGKILL it.
      EXPECT_EQ(queue.get(30s), "written before dying");
      process.kill();
      ASSERT_TRUE(process.join(30s));
    } else {
      ASSERT_TRUE(process.join(30s));
      EXPECT_EQ(queue.get(1s), "written before dying") << "how " << how;
    }
    EXPECT_EQ(process.exitcode(), expected) << "how " << how;
    EXPECT_FALSE(process.is_alive());
  }
}

TEST(Process, JoinTimesOutThenTerminateEndsIt) {
  Process process(*g_runtime, &sleep_forever);
  process.set_name("sleeper");
  EXPECT_EQ(process.name(), "sleeper");
  process.start();
  EXPECT_FALSE(process.join(50ms));
  EXPECT_TRUE(process.is_alive());
  EXPECT_EQ(process.exitcode(), std::nullopt);
  process.terminate();
  ASSERT_TRUE(process.join(30s));
  EXPECT_EQ(process.exitcode(), -SIGTERM);
}

TEST(Process, MisuseIsAClearError) {
  Process process(*g_runtime, &times_seven, 1);
  EXPECT_THROW(process.join(), std::logic_error) << "join before start";
  EXPECT_THROW(process.kill(), std::logic_error);
  process.start();
  EXPECT_THROW(process.start(), std::logic_error) << "start twice";
  EXPECT_THROW(process.set_name("late"), std::logic_error);
  // A child may not join its parent's Process.
  Process joiner(
      *g_runtime,
      [&] {
        try {
          process.join();
        } catch (const std::logic_error&) {
          return 7;
        }
        return 0;
      },
      StartMethod::kDirect);
  joiner.start();
  ASSERT_TRUE(joiner.join(30s));
  EXPECT_EQ(joiner.exitcode(), 7);
  ASSERT_TRUE(process.join(30s));
  EXPECT_THROW(Process(*g_runtime, [] {}, StartMethod::kTemplate), std::invalid_argument);
}

TEST(Process, DirectStartRunsACapturingLambda) {
  auto queue = Queue<std::uint64_t>::create(g_runtime->arena(), g_runtime->pool());
  std::vector<std::uint64_t> local{5, 6, 7};
  Process process(
      *g_runtime,
      [&] {
        std::uint64_t sum = 0;
        for (auto value : local) sum += value;
        queue.put(sum);
        return 0;
      },
      StartMethod::kDirect);
  process.start();
  ASSERT_TRUE(process.join(30s));
  EXPECT_EQ(process.exitcode(), 0);
  EXPECT_EQ(queue.get(1s), 18u);
}

TEST(Process, ThousandTemplateSpawnsEachWithACheckedResult) {
  for (int i = 0; i < 1000; ++i) {
    Process process(*g_runtime, &times_seven, i);
    process.start();
    ASSERT_TRUE(process.join(30s)) << i;
    ASSERT_EQ(process.exitcode(), i * 7 % 200) << i;
  }
}

// Exit 0 only if every item is `tag` repeated: a worker given another's arguments fails.
int all_items_are(std::vector<std::string> items, char tag, std::size_t count) {
  if (items.size() != count) return 2;
  for (const std::string& item : items) {
    if (item.find_first_not_of(tag) != std::string::npos) return 3;
  }
  return 0;
}

// Starts back to back with arguments of about 700 KB: each request's block goes back to the
// pool as soon as its worker is forked, and the next start reuses it at once. The template
// used to free it while the worker was still decoding from it (79 of 180 workers read
// another's arguments).
TEST(Process, BackToBackStartsEachDecodeTheirOwnArguments) {
  constexpr std::size_t kItems = 40'000;
  for (int round = 0; round < testing::scaled(20, 4); ++round) {
    std::vector<std::unique_ptr<Process>> workers;
    for (int i = 0; i < 6; ++i) {
      const char tag = static_cast<char>('A' + (round * 6 + i) % 26);
      workers.push_back(std::make_unique<Process>(
          *g_runtime, &all_items_are, std::vector<std::string>(kItems, std::string(12, tag)),
          tag, kItems));
      workers.back()->start();
    }
    for (const auto& worker : workers) {
      ASSERT_TRUE(worker->join(30s));
      EXPECT_EQ(worker->exitcode(), 0) << "round " << round;
    }
  }
}

// ---- the seed scenarios ----

int put_lines(Queue<std::string> queue, std::string path) {
  std::ifstream in(path);
  std::string line;
  while (std::getline(in, line)) queue.put(line);
  return in.bad() ? 2 : 0;
}

std::uint64_t fnv1a(std::string_view text, std::uint64_t hash = 0xcbf29ce484222325ULL) {
  for (unsigned char c : text) hash = (hash ^ c) * 0x100000001b3ULL;
  return hash;
}

// Python: the child's feeder thread blocks on the undrained pipe; join() never returns.
TEST(SeedScenario, JoinBeforeReadingReturnsForEveryFileSize) {
  std::mt19937_64 random(1);
  const std::string path = "/tmp/ringfork-seed-" + std::to_string(::getpid()) + ".txt";
  for (int iteration = 0; iteration < 100; ++iteration) {
    const std::size_t lines = random() % 20000;
    std::uint64_t checksum = 0;
    {
      std::ofstream out(path);
      for (std::size_t i = 0; i < lines; ++i) {
        const std::string line = "line " + std::to_string(i) + std::string(random() % 300, 'x');
        out << line << '\n';
        checksum ^= fnv1a(line) + i;
      }
    }
    auto queue = Queue<std::string>::create(g_runtime->arena(), g_runtime->pool());
    Process child(*g_runtime, &put_lines, queue, path);
    child.start();
    ASSERT_TRUE(child.join(60s)) << "join hung with " << lines << " lines unread";
    ASSERT_EQ(child.exitcode(), 0);
    std::uint64_t seen = 0, got_checksum = 0;
    std::string line;
    while (queue.get_nowait(line) == RingStatus::kOk) got_checksum ^= fnv1a(line) + seen++;
    EXPECT_EQ(seen, lines);
    EXPECT_EQ(got_checksum, checksum);
  }
  ::unlink(path.c_str());
}

// The child runs a command whose output size is unpredictable and puts it as one message,
// plus its own checksum of the bytes.
int put_command_output(Queue<Bytes> queue, std::uint64_t bytes) {
  const std::string command = "head -c " + std::to_string(bytes) + " /dev/urandom";
  FILE* pipe = ::popen(command.c_str(), "r");
  if (pipe == nullptr) return 2;
  Bytes output;
  std::byte buffer[1 << 16];
  std::size_t n;
  while ((n = std::fread(buffer, 1, sizeof(buffer), pipe)) > 0) {
    output.insert(output.end(), buffer, buffer + n);
  }
  if (::pclose(pipe) != 0) return 3;
  std::uint64_t checksum = fnv1a(std::string_view(reinterpret_cast<char*>(output.data()),
                                                  output.size()));
  Bytes digest(sizeof(checksum));
  std::memcpy(digest.data(), &checksum, sizeof(checksum));
  queue.put(output);
  queue.put(digest);
  return 0;
}

TEST(SeedScenario, ChildPayloadOfAnySizeNeverBlocksJoin) {
  std::mt19937_64 random(2);
  auto queue = Queue<Bytes>::create(g_runtime->arena(), g_runtime->pool());
  for (int iteration = 0; iteration < 100; ++iteration) {
    std::uint64_t size = random() % (1 << 20);
    if (iteration % 25 == 0) size = iteration == 0 ? 0 : (64u << 20);  // the extremes
    Process child(*g_runtime, &put_command_output, queue, size);
    child.start();
    ASSERT_TRUE(child.join(10s)) << size << " bytes: join did not return";
    EXPECT_FALSE(child.is_alive());
    ASSERT_EQ(child.exitcode(), 0);
    const Bytes payload = queue.get(1s);
    const Bytes digest = queue.get(1s);
    ASSERT_EQ(payload.size(), size);
    std::uint64_t checksum = 0;
    std::memcpy(&checksum, digest.data(), sizeof(checksum));
    EXPECT_EQ(fnv1a(std::string_view(reinterpret_cast<const char*>(payload.data()),
                                     payload.size())),
              checksum);
  }
}

// ---- hygiene ----

std::vector<pid_t> zombie_children_of(pid_t parent) {
  std::vector<pid_t> zombies;
  DIR* proc = ::opendir("/proc");
  while (dirent* entry = ::readdir(proc)) {
    const pid_t pid = static_cast<pid_t>(std::atoi(entry->d_name));
    if (pid <= 0) continue;
    std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
    std::string line;
    std::getline(stat, line);
    const auto close_paren = line.rfind(')');
    if (close_paren == std::string::npos) continue;
    std::istringstream fields(line.substr(close_paren + 2));
    char state = 0;
    pid_t ppid = 0;
    fields >> state >> ppid;
    if (state == 'Z' && ppid == parent) zombies.push_back(pid);
  }
  ::closedir(proc);
  return zombies;
}

TEST(Process, NoZombiesEvenWithoutJoin) {
  {
    Process direct(*g_runtime, [] { return 0; }, StartMethod::kDirect);
    Process templated(*g_runtime, &times_seven, 3);
    direct.start();
    templated.start();
  }  // dropped without join
  std::this_thread::sleep_for(300ms);
  EXPECT_TRUE(zombie_children_of(::getpid()).empty());
  EXPECT_TRUE(zombie_children_of(g_runtime->template_pid()).empty());
}

// PR_SET_PDEATHSIG fires when the thread that forked a child ends, not its process: a
// child forked by a short-lived thread was killed with it.
TEST(Process, DirectChildOutlivesTheThreadThatStartedIt) {
  auto queue = Queue<std::uint64_t>::create(g_runtime->arena(), g_runtime->pool());
  Process process(
      *g_runtime,
      [&] {
        std::this_thread::sleep_for(400ms);  // the starting thread has ended by now
        queue.put(42);
        return 5;
      },
      StartMethod::kDirect);
  std::thread starter([&] {
    process.start();
    // Long enough for the child to have armed its death signal: the thread's end must be
    // what it would see.
    std::this_thread::sleep_for(100ms);
  });
  starter.join();
  ASSERT_TRUE(process.join(30s));
  EXPECT_EQ(process.exitcode(), 5);
  EXPECT_EQ(queue.get(1s), 42u);
}

// A direct child inherits a copy of its parent's reaper, whose thread does not exist in it:
// its own direct children need a reaper of its own, started once even when several threads
// start their first child at the same moment.
TEST(Process, DirectChildrenOfADirectChildAreJoinedAndReaped) {
  Process child(
      *g_runtime,
      [] {
        constexpr int kThreads = 4;
        std::vector<std::optional<Process>> grandchildren(kThreads);
        std::atomic<int> ready{0};
        std::vector<std::thread> starters;
        for (int i = 0; i < kThreads; ++i) {
          grandchildren[i].emplace(*g_runtime, [i] { return 10 + i; }, StartMethod::kDirect);
          starters.emplace_back([&, i] {
            ready.fetch_add(1);
            while (ready.load() < kThreads) {
            }
            grandchildren[i]->start();
          });
        }
        for (auto& starter : starters) starter.join();
        for (int i = 0; i < kThreads; ++i) {
          if (!grandchildren[i]->join(10s)) return 100 + i;  // never reaped
          if (grandchildren[i]->exitcode() != 10 + i) return 110 + i;
        }
        std::this_thread::sleep_for(100ms);
        return zombie_children_of(::getpid()).empty() ? 0 : 120;
      },
      StartMethod::kDirect);
  child.start();
  ASSERT_TRUE(child.join(60s));
  EXPECT_EQ(child.exitcode(), 0) << "100+i: grandchild i never reaped; 110+i: wrong exit "
                                    "code; 120: zombies left";
}

bool process_gone(pid_t pid) {
  if (::kill(pid, 0) != 0) return true;
  std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
  std::string line;
  std::getline(stat, line);
  const auto close_paren = line.rfind(')');
  return close_paren != std::string::npos && line[close_paren + 2] == 'Z';
}

// Fault injection: SIGKILL a parent (this binary re-run in "parent mode") while its 16
// workers run. All of them, and its template, are gone within a second.
TEST(Process, ParentKilledTakesItsWorkersWithIt) {
  int pids_pipe[2];
  ASSERT_EQ(::pipe(pids_pipe), 0);
  const pid_t parent = ::fork();
  if (parent == 0) {
    ::dup2(pids_pipe[1], 3);
    ::execl(g_self_path, g_self_path, "--parent-mode", nullptr);
    ::_exit(127);
  }
  ::close(pids_pipe[1]);
  std::vector<pid_t> pids;
  pid_t pid = 0;
  while (pids.size() < 17 && ::read(pids_pipe[0], &pid, sizeof(pid)) == sizeof(pid)) {
    pids.push_back(pid);
  }
  ::close(pids_pipe[0]);
  ASSERT_EQ(pids.size(), 17u) << "template + 16 workers";
  for (pid_t worker : pids) EXPECT_FALSE(process_gone(worker));
  ::kill(parent, SIGKILL);
  ::waitpid(parent, nullptr, 0);
  const Deadline deadline = Deadline::after(1s);
  for (pid_t worker : pids) {
    while (!process_gone(worker) && !deadline.expired()) std::this_thread::sleep_for(5ms);
    EXPECT_TRUE(process_gone(worker)) << "orphan " << worker << " outlived its parent by 1 s";
  }
}

int run_parent_mode() {
  Runtime runtime;
  std::vector<Process> workers;
  pid_t template_pid = runtime.template_pid();
  if (::write(3, &template_pid, sizeof(template_pid)) != sizeof(template_pid)) return 1;
  for (int i = 0; i < 16; ++i) {
    workers.emplace_back(runtime, &sleep_forever);
    workers.back().start();
    const pid_t pid = workers.back().pid();
    if (::write(3, &pid, sizeof(pid)) != sizeof(pid)) return 1;
  }
  for (;;) ::pause();
}

}  // namespace
}  // namespace ringfork

int main(int argc, char** argv) {
  if (argc > 1 && std::string(argv[1]) == "--parent-mode") return ringfork::run_parent_mode();
  ringfork::g_self_path = "/proc/self/exe";
  return ringfork::testing::run_all_tests_with_runtime(argc, argv);
}
