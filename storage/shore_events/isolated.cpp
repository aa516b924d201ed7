// Runs a shore-events command in a child process. LMDB keeps no checksums of its own pages: a
// reader that meets badly damaged ones (a branch page pointing anywhere) may crash with SIGSEGV or
// SIGBUS. The parent outlives that and reports it as damage, with the exit code for damage.

#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <string.h>
#include <iostream>

#include "commands.hpp"

namespace shore_events {

namespace {

bool write_all(int fd, const char* data, std::size_t size) {
  while (size > 0) {
    const ssize_t n = ::write(fd, data, size);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    data += n;
    size -= static_cast<std::size_t>(n);
  }
  return true;
}

}  // namespace

int run_isolated(const std::function<int()>& command, bool buffer_output,
                 const std::function<void(const std::string& why)>& on_crash) {
  int out[2];
  std::cout.flush();
  std::fflush(stdout);
  if (::pipe(out) != 0) return command();  // no isolation to be had: run here
  const pid_t child = ::fork();
  if (child < 0) {
    ::close(out[0]);
    ::close(out[1]);
    return command();
  }
  if (child == 0) {
    ::close(out[0]);
    ::dup2(out[1], STDOUT_FILENO);
    ::close(out[1]);
    const int code = command();
    std::cout.flush();
    std::fflush(stdout);
    ::_exit(code);
  }
  ::close(out[1]);
  // A crash must not leave half a JSON document on stdout: buffered output is written only once
  // the child has exited normally.
  std::string buffered;
  bool output_ok = true;
  char chunk[1 << 16];
  for (;;) {
    const ssize_t n = ::read(out[0], chunk, sizeof chunk);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    if (buffer_output) {
      buffered.append(chunk, static_cast<std::size_t>(n));
    } else {
      output_ok = output_ok && write_all(STDOUT_FILENO, chunk, static_cast<std::size_t>(n));
    }
  }
  ::close(out[0]);
  int status = 0;
  while (::waitpid(child, &status, 0) < 0 && errno == EINTR) {
  }
  if (WIFSIGNALED(status)) {
    const int signal = WTERMSIG(status);
    on_crash("reading the store crashed (signal " + std::to_string(signal) + ", " + ::strsignal(signal) +
             "): LMDB's own pages are damaged");
    return kExitProblem;
  }
  if (buffer_output) output_ok = write_all(STDOUT_FILENO, buffered.data(), buffered.size());
  if (!output_ok) {
    std::cerr << "shore-events: writing stdout failed\n";
    return kExitProblem;
  }
  return WIFEXITED(status) ? WEXITSTATUS(status) : kExitProblem;
}

}  // namespace shore_events
