// Keyed hashing of byte strings from untrusted logs: hash_bytes() and what it is built from.
// Hashes are keyed with a secret drawn once per process (process_hash_key()), so collisions
// that someone finds for one key, say by writing a log, do not carry over to the key of a
// run. Hashes never leave the process. All functions are pure and thread-safe, and none
// throws.
#pragma once

#include <sys/random.h>
#include <unistd.h>

#include <bit>
#include <cerrno>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string_view>

namespace logscan {

// The secret of hash_bytes(): 128 bits, as SipHash takes.
struct HashKey {
  std::uint64_t k0 = 0;
  std::uint64_t k1 = 0;
};

// The low `n` (0..8) bytes at `p` as a little-endian word, zero above, in fixed-size loads
// (overlapping each other where n is not 4 or 1..3 apart): a memcpy of a variable length
// would be a library call.
inline std::uint64_t load_tail(const char* p, std::size_t n) noexcept {
  const auto load = [](const char* at, auto width) {
    decltype(width) word;
    std::memcpy(&word, at, sizeof word);
    return static_cast<std::uint64_t>(word);
  };
  if (n == 8) return load(p, std::uint64_t{});
  if (n >= 4) return load(p, std::uint32_t{}) | load(p + n - 4, std::uint32_t{}) << (8 * (n - 4));
  if (n == 0) return 0;
  return std::uint64_t{static_cast<unsigned char>(p[0])} |
         std::uint64_t{static_cast<unsigned char>(p[n / 2])} << (8 * (n / 2)) |
         std::uint64_t{static_cast<unsigned char>(p[n - 1])} << (8 * (n - 1));
}

// SipHash with `C` compression and `D` finalisation rounds (Aumasson and Bernstein), 8 bytes
// a step. hash_bytes() uses SipHash-1-3 (Rust's HashMap default); 2-4 is the paper's
// reference variant, for its test vector.
template <int C, int D>
std::uint64_t siphash(std::string_view bytes, const HashKey& key) noexcept {
  std::uint64_t v0 = key.k0 ^ 0x736f6d6570736575, v1 = key.k1 ^ 0x646f72616e646f6d;
  std::uint64_t v2 = key.k0 ^ 0x6c7967656e657261, v3 = key.k1 ^ 0x7465646279746573;
  const auto round = [&] {
    v0 += v1;
    v1 = std::rotl(v1, 13) ^ v0;
    v0 = std::rotl(v0, 32);
    v2 += v3;
    v3 = std::rotl(v3, 16) ^ v2;
    v0 += v3;
    v3 = std::rotl(v3, 21) ^ v0;
    v2 += v1;
    v1 = std::rotl(v1, 17) ^ v2;
    v2 = std::rotl(v2, 32);
  };
  const auto compress = [&](std::uint64_t m) {
    v3 ^= m;
    for (int i = 0; i < C; ++i) round();
    v0 ^= m;
  };
  const char* p = bytes.data();
  const std::size_t size = bytes.size();
  std::size_t n = size;
  for (; n >= 8; p += 8, n -= 8) compress(load_tail(p, 8));
  const std::uint64_t tail = load_tail(p, n);  // the last 0..7 bytes
  compress(tail | std::uint64_t{size} << 56);
  v2 ^= 0xff;
  for (int i = 0; i < D; ++i) round();
  return v0 ^ v1 ^ v2 ^ v3;
}

// This process's key, drawn from getrandom(2) on first use. Hashes never leave the process
// (decode() hashes keys again), so each process may have its own.
inline const HashKey& process_hash_key() noexcept {
  static const HashKey key = [] {
    HashKey k;
    std::byte* out = reinterpret_cast<std::byte*>(&k);
    std::size_t got = 0;
    while (got < sizeof k) {
      const ssize_t n = ::getrandom(out + got, sizeof k - got, 0);
      if (n > 0) {
        got += static_cast<std::size_t>(n);
      } else if (errno != EINTR) {
        break;
      }
    }
    if (got < sizeof k) {
      // No getrandom (a seccomp filter, an old kernel): clock, pid and addresses, which an
      // attacker without access to the machine cannot predict either.
      const auto now =
          static_cast<std::uint64_t>(std::chrono::steady_clock::now().time_since_epoch().count());
      k.k0 ^= now ^ reinterpret_cast<std::uintptr_t>(&k);
      k.k1 ^= static_cast<std::uint64_t>(::getpid()) << 32 ^
              reinterpret_cast<std::uintptr_t>(&process_hash_key);
    }
    return k;
  }();
  return key;
}

// A key of up to 16 bytes as two words, zero-padded: equal words and sizes mean equal keys,
// and the words' bytes in memory are the key's (little-endian), so they can hold it inline.
static_assert(std::endian::native == std::endian::little, "ShortKey packs little-endian");
struct ShortKey {
  static constexpr std::size_t kMaxBytes = 16;
  std::uint64_t lo = 0, hi = 0;

  static ShortKey pack(std::string_view bytes) noexcept {
    const std::size_t n = bytes.size();
    if (n <= 8) return {load_tail(bytes.data(), n), 0};
    return {load_tail(bytes.data(), 8), load_tail(bytes.data() + 8, n - 8)};
  }
  bool operator==(const ShortKey&) const = default;
};

// The 64-bit product of a and b's 128-bit product's halves, xor-ed: every input bit moves
// many output bits (the mixing step of wyhash and rapidhash).
inline std::uint64_t folded_multiply(std::uint64_t a, std::uint64_t b) noexcept {
  __extension__ using Product = unsigned __int128;  // GCC and Clang on 64-bit targets
  const Product product = static_cast<Product>(a) * b;
  return static_cast<std::uint64_t>(product) ^ static_cast<std::uint64_t>(product >> 64);
}

// The hash of a key of up to 16 bytes: two folded multiplies instead of SipHash's rounds
// (callgrind, 20 MB of loggen logs: SipHash-1-3 was a third of a worker's waiting-record
// work; this hash takes 4 % off the whole scan's instructions). Not a PRF, but the attack
// hash_bytes() guards against stays out of reach: to crowd one probe run a crafted log
// needs many keys whose hashes agree in their low bits, and with both words xor-ed with the
// 128-bit secret before the multiply, which bits agree depends on that secret, which never
// leaves the process (no hash or table order reaches the report). The one key-free
// shortcut, a word equal to its secret half (a zero factor), has chance 2^-64 per key. The
// size is mixed in by the second multiply, not into a word: xor-ed into the top byte, it
// would make a 15-byte key and a 16-byte key that differ only there collide under every
// secret.
inline std::uint64_t short_key_hash(const ShortKey& words, std::size_t size,
                                    const HashKey& key) noexcept {
  constexpr std::uint64_t kOddMix = 0x9e3779b97f4a7c15;  // 2^64 / golden ratio, odd
  const std::uint64_t h = folded_multiply(words.lo ^ key.k0, words.hi ^ key.k1);
  return folded_multiply(h ^ kOddMix, size ^ key.k0 ^ key.k1);
}

// A 64-bit hash of `bytes`, keyed with a secret drawn per process: req_ids and call names
// come from the logs, and an unkeyed hash would let a crafted log send every req_id to one
// probe run (quadratic scanning). Keys up to 16 bytes (a call id and a 12-byte req_id, the
// common waiting key) take short_key_hash(); longer ones SipHash-1-3, which gives no way to
// find collisions without the key.
inline std::uint64_t hash_bytes(std::string_view bytes,
                                const HashKey& key = process_hash_key()) noexcept {
  if (bytes.size() <= ShortKey::kMaxBytes) {
    return short_key_hash(ShortKey::pack(bytes), bytes.size(), key);
  }
  return siphash<1, 3>(bytes, key);
}

}  // namespace logscan
