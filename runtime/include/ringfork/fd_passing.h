// Passing a segment's fd to a process that did not inherit it (SCM_RIGHTS over a Unix socket).
#pragma once

namespace ringfork {

// Sends `fd` over the connected Unix-domain socket `socket`. Throws std::system_error.
void send_fd(int socket, int fd);
// Receives an fd sent with send_fd; the caller owns it (O_CLOEXEC). Throws std::system_error,
// including on end-of-stream (the peer closed without sending).
int receive_fd(int socket);

}  // namespace ringfork
