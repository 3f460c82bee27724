// Queue under memory pressure: a message taken off the queue that cannot be handed over for
// want of memory (the vector it is copied into, or the value it decodes to) is not lost:
// get throws std::bad_alloc and the thread's next get returns that message first.
#include <gtest/gtest.h>
#include <sys/resource.h>

#include <cstdio>
#include <new>
#include <string>

#include "ringfork/queue.h"
#include "test_support.h"

namespace ringfork {

// A value whose decoding runs out of memory while g_failing_decodes > 0.
struct Note {
  std::string text;
};
int g_failing_decodes = 0;

template <>
struct QueueCodec<Note> {
  static std::span<const std::byte> encode(const Note& note, Bytes&) {
    return std::as_bytes(std::span(note.text.data(), note.text.size()));
  }
  static bool decode(std::span<const std::byte> bytes, Note& note) {
    if (g_failing_decodes > 0) {
      --g_failing_decodes;
      throw std::bad_alloc();
    }
    note.text.assign(reinterpret_cast<const char*>(bytes.data()), bytes.size());
    return true;
  }
};

namespace {

using namespace std::chrono_literals;

struct Memory {
  Segment segment = Segment::create({.capacity = std::size_t{512} << 20});
  SharedArena arena = SharedArena::create(segment);
  BlockPool pool = BlockPool::create(arena, {.max_bytes = std::size_t{256} << 20});
};

TEST(QueueMemory, ValueThatCannotBeDecodedIsKeptForTheNextGet) {
  Memory m;
  auto queue = Queue<Note>::create(m.arena, m.pool);
  for (const char* text : {"first", "second", "third"}) queue.put(Note{text});
  g_failing_decodes = 2;
  EXPECT_THROW(queue.get(1s), std::bad_alloc);
  Note note;
  EXPECT_THROW(queue.get_nowait(note), std::bad_alloc) << "the same message, failing again";
  EXPECT_EQ(queue.qsize(), 2u) << "only the first was taken";
  EXPECT_EQ(queue.get(1s).text, "first");
  ASSERT_EQ(queue.get_nowait(note), RingStatus::kOk);
  EXPECT_EQ(note.text, "second");
  // Another handle of the same queue in this thread gets it too; another queue does not.
  auto other = Queue<Note>::create(m.arena, m.pool);
  other.put(Note{"other"});
  g_failing_decodes = 1;
  EXPECT_THROW(queue.get(1s), std::bad_alloc);
  EXPECT_EQ(other.get(1s).text, "other");
  auto same = Queue<Note>::attach(m.arena, m.pool, queue.offset());
  EXPECT_EQ(same.get(1s).text, "third");
  EXPECT_TRUE(queue.empty());
}

// A 48 MiB message, and the address space then limited so that the vector it would be copied
// into cannot be allocated: get throws std::bad_alloc, keeps the message, and returns it
// whole once memory is there. In a child, whose address-space limit affects no other test.
TEST(QueueMemory, MessageThatCannotBeCopiedOutIsKeptForTheNextGet) {
  if (testing::kSanitized) GTEST_SKIP() << "an address-space limit and sanitizer shadow memory do not mix";
  Memory m;
  auto queue = Queue<Bytes>::create(m.arena, m.pool);
  Bytes big(std::size_t{48} << 20);
  for (std::size_t i = 0; i < big.size(); i += 4096) big[i] = static_cast<std::byte>(i >> 12);
  queue.put(big);
  queue.put(Bytes{std::byte{7}});
  const pid_t child = testing::fork_child([&]() -> int {
    rlimit limit{};
    if (::getrlimit(RLIMIT_AS, &limit) != 0) return 10;
    const rlimit unlimited = limit;
    unsigned long pages = 0;
    FILE* statm = std::fopen("/proc/self/statm", "r");
    if (statm == nullptr || std::fscanf(statm, "%lu", &pages) != 1) return 11;
    std::fclose(statm);
    limit.rlim_cur = pages * static_cast<unsigned long>(::sysconf(_SC_PAGESIZE)) + (16 << 20);
    if (::setrlimit(RLIMIT_AS, &limit) != 0) return 12;
    bool threw = false;
    try {
      queue.get(1s);
    } catch (const std::bad_alloc&) {
      threw = true;
    }
    if (::setrlimit(RLIMIT_AS, &unlimited) != 0) return 13;
    if (!threw) return 14;
    if (queue.qsize() != 1) return 15;
    if (queue.get(1s) != big) return 16;
    if (queue.get(1s) != Bytes{std::byte{7}}) return 17;
    return 0;
  });
  testing::expect_clean_exit(child);
}

}  // namespace
}  // namespace ringfork
