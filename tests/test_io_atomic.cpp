// Atomic files: replacement, a throwing writer, writers killed mid-write (SIGKILL), a checkpoint rewritten in a loop
// and killed.
#include "io_test_util.hpp"

// The file's own namespace: the test programs compile several test files as one translation unit
// (tests/CMakeLists.txt, TOKENFORMER_UNITY_TESTS), where helpers of the same name must not collide.
namespace test_io_atomic {

using namespace tokenformer;
using namespace io_test;

// ================================================================================================
// Atomic writes
// ================================================================================================

TEST_CASE("write_file_atomically replaces a file completely", "[io][atomic]") {
  TempDir dir;
  const std::string path = dir.file("out.txt");
  const std::string long_text(100000, 'x');
  io::write_file_atomically(path, [&](io::FileSink& sink) {
    sink.write(long_text.data(), 50000);
    sink.write(long_text.data() + 50000, 50000);
  });
  CHECK(read_bytes(path) == long_text);
  io::write_file_atomically(path, [](io::FileSink& sink) { sink.write("short", 5); });
  CHECK(read_bytes(path) == "short");  // no bytes of the longer old content remain
  io::write_file_atomically(path, [](io::FileSink&) {});
  CHECK(read_bytes(path).empty());
  CHECK(dir.entries() == std::vector<std::string>{"out.txt"});
}

TEST_CASE("a writer that throws midway leaves the old file unchanged and no temporary file", "[io][atomic]") {
  TempDir dir;
  const std::string path = dir.file("out.txt");
  write_bytes(path, "the old content");
  std::string tmp_seen;
  CHECK_THROWS_WITH(io::write_file_atomically(path,
                                              [&](io::FileSink& sink) {
                                                sink.write("the new, longer content", 23);
                                                // The partial content exists, beside the target, not in it.
                                                tmp_seen = read_bytes(test_util::atomic_temp_file(path, ::getpid()));
                                                throw std::runtime_error("writer failed midway");
                                              }),
                    "writer failed midway");
  CHECK(tmp_seen == "the new, longer content");
  CHECK(read_bytes(path) == "the old content");
  CHECK(dir.entries() == std::vector<std::string>{"out.txt"});

  // A library error from the writer propagates as itself.
  CHECK_THROWS_AS(io::write_file_atomically(path,
                                            [](io::FileSink& sink) {
                                              sink.write("x", 1);
                                              throw numeric_error("NaN in tensor");
                                            }),
                  numeric_error);
  CHECK(read_bytes(path) == "the old content");
  CHECK(dir.entries() == std::vector<std::string>{"out.txt"});

  // With no old file, a failed write leaves nothing at all.
  const std::string fresh = dir.file("fresh.txt");
  CHECK_THROWS(io::write_file_atomically(fresh, [](io::FileSink& sink) {
    sink.write("x", 1);
    throw std::runtime_error("fail");
  }));
  CHECK_FALSE(std::filesystem::exists(fresh));
  CHECK(dir.entries() == std::vector<std::string>{"out.txt"});

  // A target that cannot be replaced (a non-empty directory): file_error, and the temporary is gone.
  std::filesystem::create_directories(dir.file("d/inner"));
  CHECK_THROWS_WITH(io::write_file_atomically(dir.file("d"), [](io::FileSink& sink) { sink.write("x", 1); }),
                    Contains("file error: cannot rename ") && Contains(dir.file("d")));
  CHECK(dir.entries() == std::vector<std::string>{"d", "out.txt"});
  // A missing directory: file_error naming the temporary file it could not create.
  CHECK_THROWS_WITH(io::write_file_atomically(dir.file("no/such/dir/f"), [](io::FileSink&) {}),
                    Contains("file error: cannot create " + dir.file("no/such/dir/f") + ".tmp."));
}

TEST_CASE("a writer killed with SIGKILL mid-write leaves the existing checkpoint intact", "[io][atomic][crash]") {
  TempDir dir;
  const std::string path = dir.file("model.safetensors");
  const std::vector<float> old_values = test_util::random_vector<float>(10 * 100, 21);
  {
    io::SafetensorsWriter w;
    w.add("w", Shape{10, 100}, old_values.data());
    w.write(path);
  }
  const std::string old_bytes = read_bytes(path);
  // The replacement: a valid, larger safetensors file (1 MiB of data), of which the child writes
  // the first half before it is killed.
  std::string new_bytes;
  {
    const std::vector<float> new_values = test_util::random_vector<float>(512 * 512, 22);
    io::SafetensorsWriter w;
    w.add("w", Shape{512, 512}, new_values.data());
    w.write(dir.file("new.safetensors"));
    new_bytes = read_bytes(dir.file("new.safetensors"));
    std::filesystem::remove(dir.file("new.safetensors"));
  }
  const std::size_t written_before_kill = new_bytes.size() / 2;

  const pid_t child = ::fork();
  REQUIRE(child >= 0);
  if (child == 0) {
    try {
      io::write_file_atomically(path, [&](io::FileSink& sink) {
        sink.write(new_bytes.data(), written_before_kill);
        ::raise(SIGKILL);
        sink.write(new_bytes.data() + written_before_kill, new_bytes.size() - written_before_kill);
      });
    } catch (...) {
      ::_exit(4);
    }
    ::_exit(3);  // not reached: SIGKILL cannot be caught
  }
  const int status = wait_for(child);
  REQUIRE(WIFSIGNALED(status));
  CHECK(WTERMSIG(status) == SIGKILL);

  // The child died mid-write: its partial temporary file is left behind, beside the target...
  const std::string tmp = test_util::atomic_temp_file(path, child);
  REQUIRE(std::filesystem::exists(tmp));
  CHECK(std::filesystem::file_size(tmp) == written_before_kill);
  // ...and the checkpoint is the old one, byte for byte, and reads back bit-identical.
  const bool unchanged = read_bytes(path) == old_bytes;
  CHECK(unchanged);
  io::SafetensorsReader r(path);
  std::vector<float> values(old_values.size());
  r.read("w", Shape{10, 100}, values.data());
  CHECK(same_bits(values, old_values));
  std::filesystem::remove(tmp);
}

TEST_CASE("io::save_weights killed by the kernel mid-write leaves the existing checkpoint intact",
          "[io][atomic][crash]") {
  TempDir dir;
  const std::string path = dir.file("model.safetensors");
  const std::string softmax_dir = golden_dir() + "/softmax_f32";
  auto old_model = io::load_model(softmax_dir + "/config.json", softmax_dir + "/model.safetensors");
  io::save_weights(old_model, path);
  const std::string old_bytes = read_bytes(path);
  auto new_model = io::load_model(golden_dir() + "/l2_norm_gelu_f32/config.json",
                                  golden_dir() + "/l2_norm_gelu_f32/model.safetensors");
  // The child may write at most 64 KiB per file; its save_weights of the ~200 KiB l2_norm_gelu model
  // is killed by SIGXFSZ when the temporary file reaches the limit, inside SafetensorsWriter::write.
  const rlim_t limit = 64 * 1024;

  const pid_t child = ::fork();
  REQUIRE(child >= 0);
  if (child == 0) {
    ::prctl(PR_SET_DUMPABLE, 0);  // no core dump
    const struct rlimit no_core { 0, 0 };
    ::setrlimit(RLIMIT_CORE, &no_core);
    ::signal(SIGXFSZ, SIG_DFL);
    const struct rlimit file_size { limit, limit };
    if (::setrlimit(RLIMIT_FSIZE, &file_size) != 0) ::_exit(5);
    try {
      io::save_weights(new_model, path);
    } catch (...) {
      ::_exit(4);
    }
    ::_exit(3);  // not reached
  }
  const int status = wait_for(child);
  INFO("wait status " << status);
  REQUIRE(WIFSIGNALED(status));
  CHECK(WTERMSIG(status) == SIGXFSZ);

  const std::string tmp = test_util::atomic_temp_file(path, child);
  REQUIRE(std::filesystem::exists(tmp));
  CHECK(std::filesystem::file_size(tmp) == limit);  // killed mid-write, after 64 KiB
  const bool unchanged = read_bytes(path) == old_bytes;
  CHECK(unchanged);
  // The checkpoint still loads, as the old model, bit for bit.
  auto reloaded = io::load_model(softmax_dir + "/config.json", path);
  CHECK(reloaded.config() == old_model.config());
  const auto expected = parameters_of(old_model);
  const auto actual = parameters_of(reloaded);
  REQUIRE(actual.size() == expected.size());
  for (std::size_t i = 0; i < actual.size(); ++i) {
    INFO(actual[i].first);
    CHECK(actual[i].first == expected[i].first);
    CHECK(same_bits(actual[i].second, expected[i].second));
  }
  std::filesystem::remove(tmp);
}

TEST_CASE("a checkpoint rewritten in a loop and killed at a random moment is always complete", "[io][atomic][crash]") {
  TempDir dir;
  const std::string path = dir.file("model.safetensors");
  const std::vector<float> old_values = test_util::random_vector<float>(1000, 31);
  const std::vector<float> new_values = test_util::random_vector<float>(1 << 20, 32);  // 4 MiB
  {
    io::SafetensorsWriter w;
    w.add("w", Shape{1000}, old_values.data());
    w.write(path);
  }
  const std::string old_bytes = read_bytes(path);
  std::string new_bytes;
  {
    io::SafetensorsWriter w;
    w.add("w", Shape{1 << 20}, new_values.data());
    w.write(dir.file("new.safetensors"));
    new_bytes = read_bytes(dir.file("new.safetensors"));
    std::filesystem::remove(dir.file("new.safetensors"));
  }
  for (int round = 0; round < 3; ++round) {
    const pid_t child = ::fork();
    REQUIRE(child >= 0);
    if (child == 0) {
      try {
        io::SafetensorsWriter w;
        w.add("w", Shape{1 << 20}, new_values.data());
        for (;;) w.write(path);
      } catch (...) {
        ::_exit(4);
      }
    }
    ::usleep(static_cast<useconds_t>(5000 + 10000 * round));
    ::kill(child, SIGKILL);
    const int status = wait_for(child);
    REQUIRE(WIFSIGNALED(status));
    CHECK(WTERMSIG(status) == SIGKILL);
    // Whenever the kill came, the checkpoint is one complete file: the old or the new.
    const std::string now = read_bytes(path);
    const bool complete = now == old_bytes || now == new_bytes;
    CHECK(complete);
    CHECK_NOTHROW(io::SafetensorsReader(path));
    std::error_code ec;
    std::filesystem::remove(test_util::atomic_temp_file(path, child), ec);
  }
}

}  // namespace test_io_atomic
