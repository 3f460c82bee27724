#include "ringfork/fd_passing.h"

#include <sys/socket.h>
#include <sys/uio.h>

#include <cerrno>
#include <cstring>
#include <system_error>

namespace ringfork {

namespace {

// What send_fd sends and receive_fd receives: one marker byte (a message must carry at least
// one byte of data for its control data to travel) and room for one descriptor. `message`
// points into the object itself, so it is built where it is used and never copied.
struct OneFdMessage {
  explicit OneFdMessage(char marker_byte) : marker(marker_byte) {
    message.msg_iov = &payload;
    message.msg_iovlen = 1;
    message.msg_control = control;
    message.msg_controllen = sizeof(control);
  }
  OneFdMessage(const OneFdMessage&) = delete;
  OneFdMessage& operator=(const OneFdMessage&) = delete;

  char marker;
  iovec payload{&marker, 1};
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int))] = {};
  msghdr message{};
};

}  // namespace

void send_fd(int socket, int fd) {
  OneFdMessage out('F');
  cmsghdr* header = CMSG_FIRSTHDR(&out.message);
  header->cmsg_level = SOL_SOCKET;
  header->cmsg_type = SCM_RIGHTS;
  header->cmsg_len = CMSG_LEN(sizeof(int));
  std::memcpy(CMSG_DATA(header), &fd, sizeof(int));
  for (;;) {
    if (::sendmsg(socket, &out.message, MSG_NOSIGNAL) == 1) return;
    if (errno != EINTR) throw std::system_error(errno, std::generic_category(), "send_fd");
  }
}

int receive_fd(int socket) {
  OneFdMessage in(0);
  ssize_t received;
  do {
    received = ::recvmsg(socket, &in.message, MSG_CMSG_CLOEXEC);
  } while (received < 0 && errno == EINTR);
  if (received < 0) throw std::system_error(errno, std::generic_category(), "receive_fd");
  cmsghdr* header = CMSG_FIRSTHDR(&in.message);
  if (received == 0 || header == nullptr || header->cmsg_type != SCM_RIGHTS) {
    throw std::system_error(EPROTO, std::generic_category(), "receive_fd: no fd in message");
  }
  int fd;
  std::memcpy(&fd, CMSG_DATA(header), sizeof(int));
  return fd;
}

}  // namespace ringfork
