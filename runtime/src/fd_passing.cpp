#include "ringfork/fd_passing.h"

#include <sys/socket.h>
#include <sys/uio.h>

#include <cerrno>
#include <cstring>
#include <system_error>

namespace ringfork {

void send_fd(int socket, int fd) {
  char marker = 'F';
  iovec payload{&marker, 1};
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int))] = {};
  msghdr message{};
  message.msg_iov = &payload;
  message.msg_iovlen = 1;
  message.msg_control = control;
  message.msg_controllen = sizeof(control);
  cmsghdr* header = CMSG_FIRSTHDR(&message);
  header->cmsg_level = SOL_SOCKET;
  header->cmsg_type = SCM_RIGHTS;
  header->cmsg_len = CMSG_LEN(sizeof(int));
  std::memcpy(CMSG_DATA(header), &fd, sizeof(int));
  for (;;) {
    if (::sendmsg(socket, &message, MSG_NOSIGNAL) == 1) return;
    if (errno != EINTR) throw std::system_error(errno, std::generic_category(), "send_fd");
  }
}

int receive_fd(int socket) {
  char marker = 0;
  iovec payload{&marker, 1};
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int))] = {};
  msghdr message{};
  message.msg_iov = &payload;
  message.msg_iovlen = 1;
  message.msg_control = control;
  message.msg_controllen = sizeof(control);
  ssize_t received;
  do {
    received = ::recvmsg(socket, &message, MSG_CMSG_CLOEXEC);
  } while (received < 0 && errno == EINTR);
  if (received < 0) throw std::system_error(errno, std::generic_category(), "receive_fd");
  cmsghdr* header = CMSG_FIRSTHDR(&message);
  if (received == 0 || header == nullptr || header->cmsg_type != SCM_RIGHTS) {
    throw std::system_error(EPROTO, std::generic_category(), "receive_fd: no fd in message");
  }
  int fd;
  std::memcpy(&fd, CMSG_DATA(header), sizeof(int));
  return fd;
}

}  // namespace ringfork
