// How a Pool task travels: a trampoline that decodes arguments, calls the function in the
// worker, and encodes its result.
#pragma once

#include <cstdint>
#include <tuple>
#include <type_traits>
#include <vector>

#include "ringfork/serialize.h"

namespace ringfork {

// Runs `function` on the arguments in `in` and writes its encoded result to `out`; throws
// whatever the function throws. An address in the program image, valid in every worker.
using PoolTrampoline = void (*)(std::uintptr_t function, ArgReader& in, ArgWriter& out);

namespace detail {

template <class R, class... Params>
void call_function(std::uintptr_t function, ArgReader& in, ArgWriter& out) {
  auto* target = reinterpret_cast<R (*)(Params...)>(function);
  auto arguments = decode_all<Params...>(in);
  if constexpr (std::is_void_v<R>) {
    std::apply(target, std::move(arguments));
  } else {
    Codec<std::decay_t<R>>::encode(out, std::apply(target, std::move(arguments)));
  }
}

// map/imap: one task carries a chunk of items and returns a chunk of results.
template <class R, class Param>
void call_on_chunk(std::uintptr_t function, ArgReader& in, ArgWriter& out) {
  auto* target = reinterpret_cast<R (*)(Param)>(function);
  const auto items = Codec<std::vector<std::decay_t<Param>>>::decode(in);
  std::vector<std::decay_t<R>> results;
  results.reserve(items.size());
  for (const auto& item : items) results.push_back(target(item));
  Codec<std::vector<std::decay_t<R>>>::encode(out, results);
}

// starmap: each item is a tuple of the function's parameters.
template <class R, class... Params>
void call_on_star_chunk(std::uintptr_t function, ArgReader& in, ArgWriter& out) {
  auto* target = reinterpret_cast<R (*)(Params...)>(function);
  const auto items = Codec<std::vector<std::tuple<std::decay_t<Params>...>>>::decode(in);
  std::vector<std::decay_t<R>> results;
  results.reserve(items.size());
  for (const auto& item : items) results.push_back(std::apply(target, item));
  Codec<std::vector<std::decay_t<R>>>::encode(out, results);
}

}  // namespace detail

// A function call packed for another process: what PoolOptions.initializer holds.
struct PackedCall {
  PoolTrampoline trampoline = nullptr;
  std::uintptr_t function = 0;
  std::vector<std::byte> arguments;
};

template <class R, class... Params, class... Args>
PackedCall pack_call(R (*function)(Params...), Args&&... args) {
  static_assert(sizeof...(Params) == sizeof...(Args), "one argument per parameter");
  ArgWriter writer;
  encode_all<std::decay_t<Params>...>(writer, std::forward<Args>(args)...);
  return {&detail::call_function<R, Params...>, reinterpret_cast<std::uintptr_t>(function),
          std::move(writer.buffer())};
}

}  // namespace ringfork
