// tokenformer/io/atomic_file.hpp: write a file so that a crash never leaves a half-written file.
//
// The content goes to a temporary file beside the target ("<path>.tmp.<pid>.<n>"), which is flushed
// to disk (fsync) and then renamed over the target; the directory is flushed too, so the rename
// itself survives a power loss. rename() is atomic on POSIX file systems, so a reader sees either
// the complete old file or the complete new one.
#pragma once

#include <atomic>
#include <cerrno>
#include <cstring>
#include <functional>
#include <string>

#include <fcntl.h>
#include <unistd.h>

#include "tokenformer/core/error.hpp"

namespace tokenformer::io {

/// Sink handed to the writer callback: appends bytes to the temporary file.
class FileSink {
 public:
  /// Writes to open file descriptor `fd` (not owned); `path` names it in messages.
  explicit FileSink(int fd, std::string path) : fd_(fd), path_(std::move(path)) {}
  /// Appends `bytes` bytes from `data` (retrying short writes); throws file_error when writing fails.
  void write(const void* data, std::size_t bytes) {
    const char* p = static_cast<const char*>(data);
    while (bytes > 0) {
      const ssize_t n = ::write(fd_, p, bytes);
      if (n < 0) {
        if (errno == EINTR) continue;
        throw file_error("cannot write " + path_ + ": " + std::strerror(errno));
      }
      p += n;
      bytes -= static_cast<std::size_t>(n);
    }
  }

 private:
  int fd_;
  std::string path_;
};

/// Calls `write(sink)` to produce the content of `path`, atomically replacing any existing file.
/// On any error the temporary file is removed, the old file is untouched, and file_error is thrown.
inline void write_file_atomically(const std::string& path, const std::function<void(FileSink&)>& write) {
  static std::atomic<unsigned long> counter{0};  // distinct temporary names for concurrent writers
  const std::string tmp = path + ".tmp." + std::to_string(::getpid()) + "." + std::to_string(counter++);
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) throw file_error("cannot create " + tmp + ": " + std::strerror(errno));
  try {
    FileSink sink(fd, tmp);
    write(sink);
    if (::fsync(fd) != 0) throw file_error("cannot flush " + tmp + ": " + std::strerror(errno));
  } catch (...) {
    ::close(fd);
    ::unlink(tmp.c_str());
    throw;
  }
  if (::close(fd) != 0) {
    ::unlink(tmp.c_str());
    throw file_error("cannot close " + tmp + ": " + std::strerror(errno));
  }
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    const std::string why = std::strerror(errno);
    ::unlink(tmp.c_str());
    throw file_error("cannot rename " + tmp + " to " + path + ": " + why);
  }
  const std::size_t slash = path.find_last_of('/');
  const std::string directory = slash == std::string::npos ? "." : (slash == 0 ? "/" : path.substr(0, slash));
  const int dir_fd = ::open(directory.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dir_fd >= 0) {  // best effort: some file systems do not support syncing directories
    (void)::fsync(dir_fd);
    ::close(dir_fd);
  }
}

}  // namespace tokenformer::io
