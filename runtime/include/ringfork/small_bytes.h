// SmallBytes: an immutable byte string kept in place when short and on the heap otherwise.
// Most task results are a few bytes, and a heap block allocated by the thread that receives
// results and freed by the thread that runs callbacks costs more than the rest of the
// result's way through the parent.
#pragma once

#include <cstddef>
#include <cstring>
#include <span>
#include <vector>

namespace ringfork {

class SmallBytes {
 public:
  static constexpr std::size_t kInlineBytes = 48;

  SmallBytes() = default;
  explicit SmallBytes(std::span<const std::byte> bytes) : size_(bytes.size()) {
    if (size_ <= kInlineBytes) {
      if (size_ != 0) std::memcpy(inline_, bytes.data(), size_);
    } else {
      heap_.assign(bytes.begin(), bytes.end());
    }
  }
  // Keeps a long buffer without copying it.
  explicit SmallBytes(std::vector<std::byte>&& bytes) : size_(bytes.size()) {
    if (size_ <= kInlineBytes) {
      if (size_ != 0) std::memcpy(inline_, bytes.data(), size_);
    } else {
      heap_ = std::move(bytes);
    }
  }

  // Copies only the bytes in use (a defaulted copy walks the whole inline array).
  SmallBytes(const SmallBytes& other) : size_(other.size_), heap_(other.heap_) {
    if (size_ <= kInlineBytes && size_ != 0) std::memcpy(inline_, other.inline_, size_);
  }
  // A move copies the whole inline array: a fixed-size copy is a few vector moves, where one
  // of size_ bytes is a call.
  SmallBytes(SmallBytes&& other) noexcept : size_(other.size_), heap_(std::move(other.heap_)) {
    std::memcpy(inline_, other.inline_, kInlineBytes);
  }
  SmallBytes& operator=(const SmallBytes& other) {
    if (this != &other) *this = SmallBytes(other);
    return *this;
  }
  SmallBytes& operator=(SmallBytes&& other) noexcept {
    size_ = other.size_;
    heap_ = std::move(other.heap_);
    if (this != &other) std::memcpy(inline_, other.inline_, kInlineBytes);
    return *this;
  }
  ~SmallBytes() = default;

  const std::byte* data() const noexcept { return size_ <= kInlineBytes ? inline_ : heap_.data(); }
  std::size_t size() const noexcept { return size_; }
  bool empty() const noexcept { return size_ == 0; }
  std::span<const std::byte> bytes() const noexcept { return {data(), size_}; }
  operator std::span<const std::byte>() const noexcept { return bytes(); }

 private:
  std::byte inline_[kInlineBytes] = {};  // the first size_ bytes hold the value when size_ <= kInlineBytes
  std::size_t size_ = 0;
  std::vector<std::byte> heap_;
};

}  // namespace ringfork
