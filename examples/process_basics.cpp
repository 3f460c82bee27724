// The third seed's walkthrough of multiprocessing.Process, in ringfork: start and join,
// names, is_alive, exit codes (normal, error, killed), terminate, and both start methods.
#include <unistd.h>

#include <cstdio>
#include <thread>

#include "ringfork/process.h"

namespace {

int greet(std::string who, int times) {
  for (int i = 0; i < times; ++i) std::printf("  worker %d: hello, %s\n", ::getpid(), who.c_str());
  return 0;
}
int fail_with(int code) { return code; }
int nap_forever() {
  for (;;) ::pause();
}

void show(const ringfork::Process& p) {
  const auto code = p.exitcode();
  std::printf("  %-8s pid %-7d alive=%-5s exitcode=%s\n", p.name().c_str(), p.pid(),
              p.is_alive() ? "true" : "false",
              code ? std::to_string(*code).c_str() : "None");
}

}  // namespace

int main() {
  using namespace ringfork;
  Runtime runtime;  // before any thread: the template forks here
  std::setvbuf(stdout, nullptr, _IOLBF, 0);  // interleave with the workers line by line

  std::printf("start + join, with arguments:\n");
  Process hello(runtime, &greet, std::string("ringfork"), 2);
  hello.set_name("greeter");
  hello.start();
  hello.join();
  show(hello);

  std::printf("a non-zero exit code:\n");
  Process failing(runtime, &fail_with, 3);
  failing.start();
  failing.join();
  show(failing);

  std::printf("join with a timeout, then terminate (exit code -SIGTERM):\n");
  Process sleeper(runtime, &nap_forever);
  sleeper.set_name("sleeper");
  sleeper.start();
  std::printf("  join(0.1 s) returned %s\n", sleeper.join(std::chrono::milliseconds(100)) ? "true" : "false");
  show(sleeper);
  sleeper.terminate();
  sleeper.join();
  show(sleeper);

  std::printf("direct start method, a capturing lambda:\n");
  const int secret = 42;
  Process direct(runtime, [secret] { return secret; }, StartMethod::kDirect);
  direct.set_name("lambda");
  direct.start();
  direct.join();
  show(direct);

  const bool ok = hello.exitcode() == 0 && failing.exitcode() == 3 &&
                  sleeper.exitcode() == -15 && direct.exitcode() == 42;
  std::printf("%s\n", ok ? "all as expected" : "UNEXPECTED RESULT");
  return ok ? 0 : 1;
}
