// PyTorch checkpoints (torch.save's zip format) and model directories: the fixtures of
// tests/reference/make_torch_checkpoints.py give the logits of their safetensors twins bit for bit and
// of the float64 PyTorch reference; F16/BF16 give the stored values exactly; hostile pickles run
// nothing and are refused by name; malformed, truncated and corrupted archives raise file_error.
#include "io_test_util.hpp"

#include "tokenformer/io/pickle.hpp"
#include "tokenformer/io/torch_checkpoint.hpp"
#include "tokenformer/io/weights_file.hpp"
#include "tokenformer/io/zip.hpp"

// The file's own namespace: the test programs compile several test files as one translation unit
// (tests/CMakeLists.txt, TOKENFORMER_UNITY_TESTS), where helpers of the same name must not collide.
namespace test_io_torch {

using namespace tokenformer;
using namespace io_test;

namespace {

const std::string& torch_dir() {
  static const std::string dir = golden_dir() + "/../torch";
  return dir;
}
std::string fixture(const std::string& name) { return torch_dir() + "/" + name; }

// ---- little-endian bytes, a zip writer and a pickle writer, to build archives by hand ----------

std::string u16le(std::uint64_t v) {
  return std::string{static_cast<char>(v & 0xFF), static_cast<char>(v >> 8 & 0xFF)};
}
std::string u32le(std::uint64_t v) { return u16le(v & 0xFFFF) + u16le(v >> 16 & 0xFFFF); }
std::string u64le(std::uint64_t v) { return u32le(v & 0xFFFFFFFF) + u32le(v >> 32); }

using Entries = std::vector<std::pair<std::string, std::string>>;

/// A zip archive of stored entries, each entry's data 64-byte aligned (padding in a local extra field,
/// as PyTorch writes it); with `zip64`, sizes and offsets are in zip64 extra fields and end records.
std::string make_zip(const Entries& entries, bool zip64 = false) {
  std::string out, central;
  for (const auto& [name, data] : entries) {
    const std::uint64_t local = out.size();
    const std::size_t pad = (64 - (local + 30 + name.size() + 4) % 64) % 64;
    const std::string extra = u16le(0x4246) + u16le(pad) + std::string(pad, 'Z');
    out += u32le(0x04034b50) + u16le(20) + u16le(0) + u16le(0) + u32le(0) + u32le(0) + u32le(data.size()) +
           u32le(data.size()) + u16le(name.size()) + u16le(extra.size()) + name + extra + data;
    std::string central_extra;
    std::uint64_t size = data.size(), offset = local;
    if (zip64) {
      central_extra = u16le(1) + u16le(24) + u64le(size) + u64le(size) + u64le(offset);
      size = offset = 0xFFFFFFFF;
    }
    central += u32le(0x02014b50) + u16le(45) + u16le(45) + u16le(0) + u16le(0) + u32le(0) + u32le(0) + u32le(size) +
               u32le(size) + u16le(name.size()) + u16le(central_extra.size()) + u16le(0) + u16le(0) + u16le(0) +
               u32le(0) + u32le(offset) + name + central_extra;
  }
  const std::uint64_t directory = out.size();
  out += central;
  if (zip64) {
    const std::uint64_t record = out.size();
    out += u32le(0x06064b50) + u64le(44) + u16le(45) + u16le(45) + u32le(0) + u32le(0) + u64le(entries.size()) +
           u64le(entries.size()) + u64le(central.size()) + u64le(directory);
    out += u32le(0x07064b50) + u32le(0) + u64le(record) + u32le(1);
    out += u32le(0x06054b50) + u16le(0) + u16le(0) + u16le(0xFFFF) + u16le(0xFFFF) + u32le(0xFFFFFFFF) +
           u32le(0xFFFFFFFF) + u16le(0);
  } else {
    out += u32le(0x06054b50) + u16le(0) + u16le(0) + u16le(entries.size()) + u16le(entries.size()) +
           u32le(central.size()) + u32le(directory) + u16le(0);
  }
  return out;
}

/// Pickle opcodes, appended one by one.
struct Pickle {
  std::string b;
  Pickle& op(unsigned char c) {
    b += static_cast<char>(c);
    return *this;
  }
  Pickle& proto(int version = 2) { return op(0x80).op(static_cast<unsigned char>(version)); }
  Pickle& global(const std::string& module, const std::string& name) {
    b += 'c' + module + '\n' + name + '\n';
    return *this;
  }
  Pickle& str(const std::string& s) {
    b += 'X' + u32le(s.size()) + s;
    return *this;
  }
  Pickle& integer(std::int64_t v) {
    if (v >= 0 && v < 256) return op('K').op(static_cast<unsigned char>(v));
    if (v >= 0 && v < 65536) {
      b += 'M' + u16le(static_cast<std::uint64_t>(v));
      return *this;
    }
    if (v >= INT32_MIN && v <= INT32_MAX) {
      b += 'J' + u32le(static_cast<std::uint32_t>(static_cast<std::int32_t>(v)));
      return *this;
    }
    b += "\x8a\x08" + u64le(static_cast<std::uint64_t>(v));
    return *this;
  }
  Pickle& ints(const std::vector<std::int64_t>& values) {
    op('(');
    for (auto v : values) integer(v);
    return op('t');
  }
  Pickle& stop() { return op('.'); }
};

/// What _rebuild_tensor_v2 gets for one tensor.
struct FakeTensor {
  std::string name;
  std::string key;
  std::int64_t storage_numel;
  std::int64_t offset;
  std::vector<std::int64_t> sizes, strides;
  std::string storage_type = "FloatStorage";
};

/// The opcodes of an OrderedDict of tensors, as torch.save writes them (without the final STOP).
Pickle state_dict_pickle(const std::vector<FakeTensor>& tensors) {
  Pickle p;
  p.proto().global("collections", "OrderedDict").op(')').op('R').op('(');
  for (const FakeTensor& t : tensors) {
    p.str(t.name).global("torch._utils", "_rebuild_tensor_v2").op('(');
    p.op('(').str("storage").global("torch", t.storage_type).str(t.key).str("cpu").integer(t.storage_numel).op('t');
    p.op('Q').integer(t.offset).ints(t.sizes).ints(t.strides).op(0x89);
    p.global("collections", "OrderedDict").op(')').op('R').op('t').op('R');
  }
  return p.op('u');
}

/// The bytes of a string literal, embedded NULs included.
template <std::size_t N>
std::string lit(const char (&s)[N]) {
  return std::string(s, N - 1);
}

std::string floats_bytes(const std::vector<float>& v) {
  return std::string(reinterpret_cast<const char*>(v.data()), v.size() * sizeof(float));
}

/// A torch archive with prefix "archive/": data.pkl, the storages data/<key>, and a version entry.
std::string torch_zip(const std::string& pickle, const Entries& storages, const std::string& prefix = "archive") {
  Entries entries{{prefix + "/data.pkl", pickle}};
  for (const auto& [key, bytes] : storages) entries.emplace_back(prefix + "/data/" + key, bytes);
  entries.emplace_back(prefix + "/version", "3\n");
  return make_zip(entries);
}

/// Two tensors viewing one storage of 10 floats 0..9: "a" [2, 3] at 0 and "b" [4] at 6.
std::string small_checkpoint(bool zip64 = false) {
  std::vector<float> values(10);
  for (std::size_t i = 0; i < values.size(); ++i) values[i] = static_cast<float>(i) + 0.5f;
  const std::string pickle =
      state_dict_pickle({{"a", "0", 10, 0, {2, 3}, {3, 1}}, {"b", "0", 10, 6, {4}, {1}}}).stop().b;
  if (!zip64) return torch_zip(pickle, {{"0", floats_bytes(values)}});
  return make_zip({{"archive/data.pkl", pickle}, {"archive/data/0", floats_bytes(values)}}, true);
}

std::string open_error(const std::string& bytes) {
  return message_of<file_error>([&] { io::TorchCheckpointReader::from_memory(bytes, "t.bin"); });
}
std::string pickle_error(const Pickle& p, const Entries& storages = {{"0", std::string(40, '\0')}}) {
  return open_error(torch_zip(p.b, storages));
}

/// "ok" when opening `bytes` and reading every tensor (as float) succeeds, "file_error" when a
/// file_error is thrown, otherwise what was thrown.
std::string outcome(const std::string& bytes, bool weights_file = false) {
  try {
    const auto read_all = [](auto& reader) {
      for (const auto& [name, info] : reader.tensors()) {
        std::vector<float> values(static_cast<std::size_t>(info.shape.numel()));
        reader.read(name, info.shape, values.data());
      }
    };
    if (weights_file) {
      auto reader = io::WeightsFile::from_memory(bytes, "t.bin");
      read_all(reader);
    } else {
      auto reader = io::TorchCheckpointReader::from_memory(bytes, "t.bin");
      read_all(reader);
    }
    return "ok";
  } catch (const file_error&) {
    return "file_error";
  } catch (const std::exception& e) {
    return std::string("other exception: ") + e.what();
  }
}

template <class Reader>
std::vector<float> tensor_values(Reader& reader, const std::string& name) {
  const io::TensorInfo& info = reader.info(name);
  std::vector<float> values(static_cast<std::size_t>(info.shape.numel()));
  reader.read(name, info.shape, values.data());
  return values;
}

std::vector<std::int32_t> fixture_tokens() {
  std::vector<std::int32_t> tokens;
  for (const auto& s : test_util::read_sequences(fixture("tokens.txt")))
    tokens.insert(tokens.end(), s.begin(), s.end());
  return tokens;
}
template <class Model>
std::vector<float> fixture_logits(Model& model) {
  const auto tokens = fixture_tokens();
  const auto logits = model.forward(tokens, 2, static_cast<index_t>(tokens.size() / 2));
  return std::vector<float>(logits.data(), logits.data() + logits.size());
}

}  // namespace

// ================================================================================================
// The fixtures: values and logits
// ================================================================================================

TEST_CASE("a torch.save model gives the logits of its safetensors twin bit for bit and of the PyTorch reference",
          "[io][torch]") {
  const std::string config = fixture("config.json");
  auto twin = io::load_model(config, fixture("model.safetensors"));
  CHECK(twin.vocab_size() == 40);  // the hub config has no vocab_size: the embedding's rows give it
  const auto expected_logits = fixture_logits(twin);
  const auto reference = test_util::read_floats(fixture("logits_f32.f32"));
  REQUIRE(reference.size() == static_cast<std::size_t>(2 * 9 * 40));
  CHECK(test_util::max_abs_diff(expected_logits, reference) <= 1e-4);

  for (const char* file : {"model_f32.bin", "shared_storage.bin"}) {
    INFO(file);
    auto model = io::load_model(config, fixture(file));
    CHECK(model.config() == twin.config());
    const auto a = parameters_of(twin);
    const auto b = parameters_of(model);
    REQUIRE(a.size() == b.size());
    for (std::size_t i = 0; i < a.size(); ++i) {
      INFO(a[i].first);
      CHECK(same_bits(a[i].second, b[i].second));
    }
    CHECK(same_bits(fixture_logits(model), expected_logits));
  }

  // A double model reads the same values.
  auto twin64 = io::load_model<presets::Dynamic<double>>(config, fixture("model.safetensors"));
  auto bin64 = io::load_model<presets::Dynamic<double>>(config, fixture("model_f32.bin"));
  const auto a = parameters_of(twin64);
  const auto b = parameters_of(bin64);
  REQUIRE(a.size() == b.size());
  for (std::size_t i = 0; i < a.size(); ++i) CHECK(same_bits(a[i].second, b[i].second));
}

TEST_CASE("F16 and BF16 torch checkpoints give the values torch stored exactly and the reference logits",
          "[io][torch]") {
  for (const auto& [bin, twin, logits, dtype, prefix] :
       {std::tuple<const char*, const char*, const char*, io::DType, const char*>{
            "model_f16.bin", "model_f16.safetensors", "logits_f16.f32", io::DType::F16, "archive/"},
        {"model_bf16.bin", "model_bf16.safetensors", "logits_bf16.f32", io::DType::BF16, "model_bf16/"}}) {
    INFO(bin);
    io::TorchCheckpointReader reader(fixture(bin));
    io::SafetensorsReader reference(fixture(twin));
    CHECK(reader.prefix() == prefix);
    REQUIRE(reader.tensors().size() == reference.tensors().size());
    for (const auto& [name, info] : reference.tensors()) {
      INFO(name);
      REQUIRE(reader.contains(name));
      CHECK(reader.info(name).dtype == dtype);
      CHECK(reader.info(name).shape == info.shape);
      CHECK(same_bits(tensor_values(reader, name), tensor_values(reference, name)));
    }
    auto model = io::load_model(fixture("config.json"), fixture(bin));
    auto twin_model = io::load_model(fixture("config.json"), fixture(twin));
    const auto ours = fixture_logits(model);
    CHECK(same_bits(ours, fixture_logits(twin_model)));
    CHECK(test_util::max_abs_diff(ours, test_util::read_floats(fixture(logits))) <= 1e-4);
  }
}

TEST_CASE("torch archives: either prefix, shared storages, parameters, odd but contiguous views", "[io][torch]") {
  io::TorchCheckpointReader f32(fixture("model_f32.bin"));
  CHECK(f32.prefix() == "model_f32/");
  CHECK(f32.path() == fixture("model_f32.bin"));
  CHECK(f32.tensors().size() == 1 + 2 * 10 + 2);

  // Every tensor of shared_storage.bin views one storage; the extras are a 0-d view, an empty view at
  // the end, and a [1, 4] view whose size-1 dimension has stride 999; the int value is skipped.
  io::TorchCheckpointReader shared(fixture("shared_storage.bin"));
  io::SafetensorsReader twin(fixture("model.safetensors"));
  CHECK(shared.tensors().size() == twin.tensors().size() + 3);
  CHECK_FALSE(shared.contains("extra.not_a_tensor"));
  const std::vector<float> embedding = tensor_values(twin, io::embedding_key());
  CHECK(shared.info("extra.scalar").shape.rank() == 0);
  CHECK(tensor_values(shared, "extra.scalar") == std::vector<float>{embedding[5]});
  CHECK(shared.info("extra.empty").shape == Shape{0});
  CHECK(tensor_values(shared, "extra.empty").empty());
  CHECK(shared.info("extra.unit_dim").shape == Shape{1, 4});
  CHECK(tensor_values(shared, "extra.unit_dim") == std::vector<float>(embedding.begin() + 7, embedding.begin() + 11));
  // Views of one storage: their byte ranges follow one another inside one entry.
  const auto& e = shared.info(io::embedding_key());
  const auto& q = shared.info("sequential.2.attention.query.key_param_tokens");
  CHECK(q.begin == e.end);

  // The hand-built archive: two views of one storage at different offsets, plain and zip64.
  for (bool zip64 : {false, true}) {
    INFO("zip64 " << zip64);
    auto r = io::TorchCheckpointReader::from_memory(small_checkpoint(zip64), "small.bin");
    CHECK(r.path() == "small.bin");
    CHECK(tensor_values(r, "a") == std::vector<float>{0.5f, 1.5f, 2.5f, 3.5f, 4.5f, 5.5f});
    CHECK(tensor_values(r, "b") == std::vector<float>{6.5f, 7.5f, 8.5f, 9.5f});
    std::vector<double> b(4);
    r.read("b", Shape{4}, b.data());
    CHECK(b == std::vector<double>{6.5, 7.5, 8.5, 9.5});
    Tensor<float> t(Shape{2, 3});
    r.read("a", t);
    CHECK(t.data()[5] == 5.5f);
    CHECK_THAT(message_of<file_error>([&] {
                 r.read("a", Shape{3, 2}, b.data());
               }),
               Contains("small.bin: tensor 'a' has shape [2, 3], expected [3, 2]"));
    CHECK_THAT(message_of<file_error>([&] { r.info("c"); }), Contains("small.bin: missing tensor 'c'"));
  }

  // F64 storages read as double, exactly.
  const std::vector<double> d{0.1, -2.5e-300, 3.0};
  const std::string bytes = torch_zip(state_dict_pickle({{"d", "k", 3, 0, {3}, {1}, "DoubleStorage"}}).stop().b,
                                      {{"k", std::string(reinterpret_cast<const char*>(d.data()), 24)}});
  auto r = io::TorchCheckpointReader::from_memory(bytes);
  CHECK(r.info("d").dtype == io::DType::F64);
  std::vector<double> back(3);
  r.read("d", Shape{3}, back.data());
  CHECK(same_bits(back, d));

  // A plain dict (EMPTY_DICT), protocol-4 opcodes (FRAME, MEMOIZE, SHORT_BINUNICODE, STACK_GLOBAL)
  // and _rebuild_parameter.
  Pickle p;
  p.proto(4).op(0x95).b += u64le(0);
  p.op('}').op(0x94).op('(').op(0x8c).op(1).b += "w";
  p.op(0x8c).op(12).b += "torch._utils";
  p.op(0x8c).op(18).b += "_rebuild_parameter";
  p.op(0x93);
  p.op(0x8c).op(12).b += "torch._utils";
  p.op(0x8c).op(18).b += "_rebuild_tensor_v2";
  p.op(0x93).op('(').op('(').str("storage").global("torch", "HalfStorage").str("0").str("cpu").integer(2).op('t');
  p.op('Q').integer(0).ints({2}).ints({1}).op(0x89).op('}').op('t').op('R').op(0x88).op('}').op(0x87).op('R');
  p.op('u').stop();
  auto half = io::TorchCheckpointReader::from_memory(torch_zip(p.b, {{"0", le16s({0x3C00, 0xC000})}}));
  CHECK(tensor_values(half, "w") == std::vector<float>{1.0f, -2.0f});
}

TEST_CASE("WeightsFile opens either format by content with one interface", "[io][torch]") {
  io::WeightsFile bin(fixture("model_f32.bin"));
  io::WeightsFile st(fixture("model.safetensors"));
  CHECK(bin.format() == io::WeightsFormat::torch);
  CHECK(st.format() == io::WeightsFormat::safetensors);
  CHECK(bin.path() == fixture("model_f32.bin"));
  CHECK(bin.metadata().empty());
  CHECK(st.metadata().at("format") == "pt");
  REQUIRE(bin.tensors().size() == st.tensors().size());
  for (const auto& [name, info] : st.tensors()) {
    INFO(name);
    REQUIRE(bin.contains(name));
    CHECK(same_bits(tensor_values(bin, name), tensor_values(st, name)));
  }
  // From memory, both formats.
  auto m1 = io::WeightsFile::from_memory(read_bytes(fixture("model_f16.bin")), "m.bin");
  auto m2 = io::WeightsFile::from_memory(read_bytes(fixture("model_f16.safetensors")), "m.safetensors");
  CHECK(m1.format() == io::WeightsFormat::torch);
  CHECK(m2.format() == io::WeightsFormat::safetensors);
  CHECK(same_bits(tensor_values(m1, io::embedding_key()), tensor_values(m2, io::embedding_key())));
  auto s = io::SafetensorsReader::from_memory(read_bytes(fixture("model.safetensors")), "mem");
  CHECK(s.path() == "mem");
  CHECK(same_bits(tensor_values(s, io::embedding_key()), tensor_values(st, io::embedding_key())));

  // Neither format, a legacy torch.save file, a directory, a missing file.
  TempDir dir;
  CHECK_THAT(message_of<file_error>([&] { io::WeightsFile::from_memory("hello", "x.bin"); }),
             Contains("x.bin is not a safetensors file"));
  CHECK_THAT(
      message_of<file_error>([&] { io::WeightsFile::from_memory(std::string("\x80\x02\x8a\x0a", 4), "old.bin"); }),
      Contains("old.bin is a legacy torch.save file (before PyTorch 1.6)"));
  write_bytes(dir.file("old.bin"), std::string("\x80\x02\x8a\x0alegacy", 10));
  CHECK_THAT(message_of<file_error>([&] { io::WeightsFile w(dir.file("old.bin")); }), Contains("legacy torch.save"));
  CHECK_THAT(message_of<file_error>([&] { io::WeightsFile w(dir.str()); }), Contains("it is a directory"));
  CHECK_THAT(message_of<file_error>([&] { io::WeightsFile w(dir.file("none.bin")); }),
             Contains("cannot open " + dir.file("none.bin")));
  CHECK_THAT(message_of<file_error>([&] { io::TorchCheckpointReader r(dir.str()); }), Contains("it is a directory"));
}

// ================================================================================================
// Refused content
// ================================================================================================

TEST_CASE("a non-contiguous tensor is refused naming it", "[io][torch]") {
  CHECK_THAT(message_of<file_error>([&] { io::TorchCheckpointReader r(fixture("transposed.bin")); }),
             Contains(fixture("transposed.bin") + ": tensor 'transposed.weight' is not contiguous (shape [3, 4], "
                                                  "strides [1, 3])"));
  // A slice that skips elements, and a negative stride.
  CHECK_THAT(open_error(torch_zip(state_dict_pickle({{"s", "0", 12, 0, {2, 2}, {4, 1}}}).stop().b,
                                  {{"0", std::string(48, '\0')}})),
             Contains("tensor 's' is not contiguous"));
  CHECK_THAT(
      open_error(torch_zip(state_dict_pickle({{"n", "0", 4, 3, {4}, {-1}}}).stop().b, {{"0", std::string(16, '\0')}})),
      Contains("tensor 'n' is not contiguous"));
  // An empty tensor's strides do not matter.
  CHECK(outcome(torch_zip(state_dict_pickle({{"e", "0", 4, 4, {0, 3}, {7, 9}}}).stop().b,
                          {{"0", std::string(16, '\0')}})) == "ok");
}

TEST_CASE("a pickle naming any other global is refused by name and runs nothing", "[io][torch][hostile]") {
  // The fixture: posix.system("touch /tmp/tokenformer_torch_pickle_was_executed").
  const std::string pwned = "/tmp/tokenformer_torch_pickle_was_executed";
  std::remove(pwned.c_str());
  CHECK_THAT(message_of<file_error>([&] { io::TorchCheckpointReader r(fixture("malicious.bin")); }),
             Contains(fixture("malicious.bin") + ": malicious/data.pkl: pickle global 'posix.system' is not allowed") &&
                 Contains("nothing was run"));
  CHECK_THAT(message_of<file_error>([&] { io::load_model(fixture("config.json"), fixture("malicious.bin")); }),
             Contains("pickle global 'posix.system' is not allowed"));
  CHECK_FALSE(std::filesystem::exists(pwned));

  // The same with a file in a fresh directory, by GLOBAL and by STACK_GLOBAL, at the top and nested
  // where a storage type belongs.
  TempDir dir;
  const std::string target = dir.file("pwned");
  Pickle system;
  system.proto().global("posix", "system").str("touch " + target).op(0x85).op('R').stop();
  CHECK_THAT(pickle_error(system), Contains("t.bin: archive/data.pkl: pickle global 'posix.system' is not allowed"));
  Pickle stack;
  stack.proto(4).op(0x8c).op(5).b += "posix";
  stack.op(0x8c).op(6).b += "system";
  stack.op(0x93).str("touch " + target).op(0x85).op('R').stop();
  CHECK_THAT(pickle_error(stack), Contains("pickle global 'posix.system' is not allowed"));
  for (const auto& [module, name] :
       std::vector<std::pair<std::string, std::string>>{{"builtins", "eval"},
                                                        {"os", "system"},
                                                        {"subprocess", "Popen"},
                                                        {"torch", "load"},
                                                        {"torch._utils", "_rebuild_qtensor"},
                                                        {"torch", "LongStorage"},
                                                        {"collections", "OrderedDic"}}) {
    Pickle p = state_dict_pickle({{"a", "0", 10, 0, {2}, {1}, "FloatStorage"}});
    p.b.insert(p.b.find("ctorch\nFloatStorage"), "c" + module + "\n" + name + "\n0");  // pushed, then popped
    p.stop();
    CHECK_THAT(pickle_error(p), Contains("pickle global '" + module + "." + name + "' is not allowed"));
  }
  Pickle odd;
  odd.proto().global("po\x01six", "sys tem").stop();
  CHECK_THAT(pickle_error(odd), Contains("pickle global 'po\\x01six.sys tem' is not allowed"));
  CHECK(dir.entries().empty());
}

TEST_CASE("malformed pickles raise file_error naming the problem and its byte offset", "[io][torch][hostile]") {
  const auto with_stop = [](Pickle p) { return p.stop(); };
  // Unknown opcodes, by hex and offset.
  Pickle obj;
  obj.proto().op(0x81).stop();
  CHECK_THAT(pickle_error(obj), Contains("unsupported pickle opcode 0x81 (pickle opcode at byte 2)"));
  Pickle inst;
  inst.proto().op('i').stop();
  CHECK_THAT(pickle_error(inst), Contains("unsupported pickle opcode 0x69"));
  CHECK_THAT(pickle_error(Pickle{}.proto(6).stop()), Contains("pickle protocol 6 is not supported"));
  // Structure.
  CHECK_THAT(pickle_error(Pickle{}.proto().op('R').stop()), Contains("stack underflow"));
  CHECK_THAT(pickle_error(Pickle{}.proto().op('}').op('(').op('s').stop()), Contains("stack underflow"));
  CHECK_THAT(pickle_error(Pickle{}.proto().op('t').stop()), Contains("needs a MARK"));
  CHECK_THAT(pickle_error(Pickle{}.proto().op('h').op(3).stop()),
             Contains("memo entry 3 is read before it is written"));
  CHECK_THAT(pickle_error(Pickle{}.proto().op('q').op(0).stop()), Contains("stack underflow"));
  CHECK_THAT(pickle_error(Pickle{}.proto().op('}')), Contains("ends without a STOP"));
  CHECK_THAT(pickle_error(Pickle{}.proto().op('X').op(5)), Contains("ends inside an opcode's argument"));
  Pickle huge_string;
  huge_string.proto().b += "X" + u32le(0xFFFFFFFF) + "abc";
  CHECK_THAT(pickle_error(huge_string), Contains("string of 4294967295 bytes is too long"));
  Pickle huge_string8;
  huge_string8.proto().b += "\x8d" + u64le(~std::uint64_t{0});
  CHECK_THAT(pickle_error(huge_string8), Contains("is too long"));
  CHECK_THAT(pickle_error(Pickle{}.proto().op(0x8a).op(9).stop()), Contains("LONG1 integer of 9 bytes is too large"));
  CHECK_THAT(pickle_error(Pickle{}.proto().op(']').stop()), Contains("the pickle holds a list, not a state dict"));
  CHECK_THAT(pickle_error(Pickle{}.proto().op(']').op('(').op('N').op('N').op('u').stop()),
             Contains("SETITEM(S) on a list"));
  CHECK_THAT(pickle_error(Pickle{}.proto().op('}').op('(').op('N').op('u').stop()), Contains("odd number"));
  CHECK_THAT(pickle_error(Pickle{}.proto().op('}').op('N').op('a').stop()), Contains("APPEND(S) on a dict"));
  CHECK_THAT(pickle_error(Pickle{}.proto().op(']').op('}').op('b').stop()), Contains("BUILD on a list"));
  CHECK_THAT(pickle_error(Pickle{}.proto().op('N').op(')').op('R').stop()), Contains("REDUCE calls None"));
  CHECK_THAT(pickle_error(Pickle{}.proto().global("collections", "OrderedDict").op('N').op('R').stop()),
             Contains("REDUCE's arguments are not a tuple"));
  CHECK_THAT(pickle_error(Pickle{}.proto().global("collections", "OrderedDict").op('N').op(0x85).op('R').stop()),
             Contains("OrderedDict is called with arguments"));
  CHECK_THAT(pickle_error(Pickle{}.proto().global("torch", "FloatStorage").op(')').op('R').stop()),
             Contains("a storage type is called"));
  CHECK_THAT(pickle_error(Pickle{}.proto().op('N').op('Q').stop()), Contains("a persistent id must be a tuple"));
  CHECK_THAT(pickle_error(Pickle{}.proto().str("storage").op(0x85).op('Q').stop()),
             Contains("a persistent id must be ('storage', <storage type>, key, location, size)"));
  CHECK_THAT(pickle_error(Pickle{}.proto().global("torch._utils", "_rebuild_tensor_v2").op(')').op('R').stop()),
             Contains("_rebuild_tensor_v2 needs"));
  CHECK_THAT(pickle_error(Pickle{}.proto().global("torch._utils", "_rebuild_parameter").op(')').op('R').stop()),
             Contains("_rebuild_parameter needs"));
  CHECK_THAT(pickle_error(Pickle{}.proto().global("torch", "FloatStorage\x01").stop()),
             Contains("'torch.FloatStorage\\x01'"));
  std::string long_name(300, 'a');
  CHECK_THAT(pickle_error(Pickle{}.proto().global("torch", long_name).stop()), Contains("longer than 256 bytes"));
  CHECK_THAT(pickle_error(Pickle{}.proto().op('c').op('x')), Contains("unterminated"));

  // State-dict content: duplicate names, non-string keys, nested checkpoints.
  Pickle twice = state_dict_pickle({{"a", "0", 10, 0, {2}, {1}}, {"a", "0", 10, 2, {2}, {1}}});
  CHECK_THAT(pickle_error(with_stop(twice)), Contains("tensor 'a' appears twice in the state dict"));
  Pickle int_key = state_dict_pickle({{"a", "0", 10, 0, {2}, {1}}});
  int_key.b.replace(int_key.b.find(lit("X\x01\x00\x00\x00"
                                       "a")),
                    6, "K\x07");
  CHECK_THAT(pickle_error(with_stop(int_key)), Contains("a tensor is stored under an integer key"));
  Pickle nested;
  nested.proto().op('}').str("model").b += state_dict_pickle({{"a", "0", 10, 0, {2}, {1}}}).b.substr(2);
  nested.op('s').stop();
  CHECK_THAT(pickle_error(nested), Contains("the state dict holds no tensors, only 1 other values"));
  CHECK(outcome(torch_zip(Pickle{}.proto().op('}').stop().b, {})) == "ok");  // an empty state dict

  // Storages and tensor extents.
  const std::string ok = state_dict_pickle({{"a", "0", 10, 2, {2, 4}, {4, 1}}}).stop().b;
  CHECK(outcome(torch_zip(ok, {{"0", std::string(40, '\0')}})) == "ok");
  CHECK_THAT(open_error(torch_zip(ok, {{"1", std::string(40, '\0')}})),
             Contains("storage '0' has no entry 'archive/data/0' in the archive"));
  CHECK_THAT(open_error(torch_zip(ok, {{"0", std::string(39, '\0')}})),
             Contains("storage '0' of 10 F32 elements needs 40 bytes but its entry holds 39"));
  CHECK_THAT(pickle_error(state_dict_pickle({{"a", "0", 10, 3, {2, 4}, {4, 1}}}).stop()),
             Contains("tensor 'a': 8 elements at offset 3 lie outside its storage '0' of 10 elements"));
  CHECK_THAT(pickle_error(state_dict_pickle({{"a", "0", 10, -1, {2}, {1}}}).stop()),
             Contains("at offset -1 lie outside"));
  CHECK_THAT(pickle_error(state_dict_pickle({{"a", "0", 10, 0, {1, 1, 1, 1, 2}, {2, 2, 2, 2, 1}}}).stop()),
             Contains("tensor 'a' has 5 dimensions (at most 4 are supported)"));
  CHECK_THAT(pickle_error(state_dict_pickle({{"a", "0", 10, 0, {-2}, {1}}}).stop()),
             Contains("dimension -2 is invalid"));
  CHECK_THAT(pickle_error(state_dict_pickle({{"a", "0", 10, 0, {1 << 30, 1 << 30}, {1 << 30, 1}}}).stop()),
             Contains("shape is too large"));
  CHECK_THAT(pickle_error(state_dict_pickle({{"a", "0", INT64_MAX, 0, {2}, {1}}}).stop()),
             Contains("storage '0' of 9223372036854775807 F32 elements needs more bytes"));
  CHECK_THAT(pickle_error(state_dict_pickle({{"a", "0", 10, 0, {2}, {1}}, {"b", "0", 5, 0, {2}, {1}}}).stop()),
             Contains("storage '0' is described twice with different types or sizes"));
  CHECK_THAT(
      pickle_error(state_dict_pickle({{"a", "0", 10, 0, {2}, {1}}, {"b", "0", 10, 0, {2}, {1}, "HalfStorage"}}).stop()),
      Contains("storage '0' is described twice"));
  std::vector<std::int64_t> rank17(17, 1);
  CHECK_THAT(pickle_error(state_dict_pickle({{"a", "0", 10, 0, rank17, rank17}}).stop()),
             Contains("a tensor of 17 dimensions (at most 16)"));
  // Byte order: newer PyTorch writes a byteorder entry.
  for (const auto& [order, expected] :
       std::vector<std::pair<std::string, std::string>>{{"little", "ok"}, {"big", "file_error"}}) {
    const std::string bytes =
        make_zip({{"archive/data.pkl", ok}, {"archive/data/0", std::string(40, '\0')}, {"archive/byteorder", order}});
    CHECK(outcome(bytes) == expected);
  }
  CHECK_THAT(open_error(make_zip({{"archive/data.pkl", ok}, {"archive/byteorder", "big"}})),
             Contains("byte order 'big' is not supported"));
}

TEST_CASE("the unpickler's limits bound stacks, marks, memo, objects and items", "[io][torch][hostile]") {
  const auto run = [](const std::string& bytes, const io::pickle::Limits& limits) {
    return message_of<file_error>([&] {
      io::pickle::read_torch_state_dict(reinterpret_cast<const unsigned char*>(bytes.data()), bytes.size(), "p",
                                        limits);
    });
  };
  io::pickle::Limits small;
  small.max_stack = 100;
  small.max_marks = 10;
  small.max_memo = 10;
  small.max_objects = 1000;
  small.max_items = 50;
  small.max_string = 8;
  CHECK_THAT(run("\x80\x02" + std::string(101, 'N') + ".", small), Contains("stack grows beyond 100 values"));
  CHECK_THAT(run("\x80\x02" + std::string(11, '(') + ".", small), Contains("more than 10 nested MARKs"));
  std::string memo = "\x80\x02N";
  for (int i = 0; i < 11; ++i) memo += "q" + std::string(1, static_cast<char>(i));
  CHECK_THAT(run(memo + ".", small), Contains("more than 10 memo entries"));
  std::string objects = "\x80\x02]";
  for (int i = 0; i < 1001; ++i) objects += "Na";  // None appended to a list: the stack stays small
  io::pickle::Limits many_items = small;
  many_items.max_items = 1 << 20;
  CHECK_THAT(run(objects + ".", many_items), Contains("creates more than 1000 objects"));
  // A list appended to itself through the memo: items, not memory, run out.
  std::string items = lit("\x80\x02]q\x00");
  for (int i = 0; i < 60; ++i)
    items +=
        lit("h\x00"
            "a");
  CHECK_THAT(run(items + ".", small), Contains("containers hold more than 50 items"));
  CHECK_THAT(run("\x80\x02X" + u32le(9) + "123456789.", small), Contains("string of 9 bytes is too long"));
  // With the default limits, deep MARK nesting and a self-referencing list are refused or harmless.
  CHECK_THAT(run("\x80\x02" + std::string(100000, '(') + ".", {}), Contains("nested MARKs"));
  // d = {}; d['a'] = d; l = []; l.append(l); the list is the result
  const std::string cycle =
      lit("\x80\x02}q\x00X\x01\x00\x00\x00"
          "ah\x00s]q\x01h\x01"
          "a.");
  CHECK_THAT(run(cycle, {}), Contains("the pickle holds a list, not a state dict"));
}

// ================================================================================================
// Malformed archives
// ================================================================================================

TEST_CASE("malformed zip archives raise file_error naming what is wrong", "[io][torch][hostile]") {
  const std::string good = small_checkpoint();
  REQUIRE(outcome(good) == "ok");
  const std::size_t eocd = good.size() - 22;
  const auto patched = [&](std::size_t at, const std::string& bytes) {
    std::string s = good;
    s.replace(at, bytes.size(), bytes);
    return s;
  };
  const std::size_t directory = good.find(std::string("PK\x01\x02", 4));
  REQUIRE(directory != std::string::npos);

  CHECK_THAT(open_error(""), Contains("t.bin is not a zip archive: 0 bytes"));
  CHECK_THAT(open_error(good.substr(0, good.size() - 1)), Contains("no end-of-central-directory record"));
  CHECK_THAT(open_error(patched(eocd + 16, u32le(good.size()))), Contains("the central directory (offset"));
  CHECK_THAT(open_error(patched(eocd + 16, u32le(0xFFFFFFF0))), Contains("lies outside the archive"));
  CHECK_THAT(open_error(patched(eocd + 12, u32le(0xFFFFFFFF))), Contains("lies outside the archive"));
  CHECK_THAT(open_error(patched(eocd + 12, u32le(eocd - directory - 1) + u32le(directory + 1))),
             Contains("central directory entry 0: bad signature or truncated record"));
  const std::size_t third =
      good.find(std::string("PK\x01\x02", 4), good.find(std::string("PK\x01\x02", 4), directory + 1) + 1);
  CHECK_THAT(open_error(patched(third, "PK\x01\x03")),
             Contains("central directory entry 2: bad signature or truncated record"));
  CHECK_THAT(open_error(patched(eocd + 8, u16le(50) + u16le(50))), Contains("cannot hold 50 entries"));
  CHECK_THAT(open_error(patched(eocd + 4, u16le(1))), Contains("multi-disk"));
  // Central records: method, encryption, sizes, local header offsets, names.
  CHECK_THAT(open_error(patched(directory + 10, u16le(8))),
             Contains("zip entry 'archive/data.pkl' is compressed (method 8)"));
  CHECK_THAT(open_error(patched(directory + 8, u16le(1))), Contains("zip entry 'archive/data.pkl' is encrypted"));
  CHECK_THAT(open_error(patched(directory + 20, u32le(1))), Contains("compressed size 1 differs"));
  CHECK_THAT(open_error(patched(directory + 20, u32le(0xFFFFFF) + u32le(0xFFFFFF))),
             Contains("run past the archive data"));
  CHECK_THAT(open_error(patched(directory + 42, u32le(directory))), Contains("local header offset"));
  CHECK_THAT(open_error(patched(directory + 42, u32le(0xFFFFFFFE))), Contains("local header offset"));
  CHECK_THAT(open_error(patched(directory + 42, u32le(1))), Contains("bad local header signature"));
  CHECK_THAT(open_error(patched(directory + 28, u16le(0xFFFF))), Contains("run past the central directory"));
  CHECK_THAT(open_error(patched(directory + 30, u16le(8))),
             Contains("zip entry 'archive/data.pkl': malformed extra field"));
  CHECK_THAT(open_error(patched(directory + 32, u16le(0xFFFF))), Contains("run past the central directory"));
  CHECK_THAT(open_error(patched(directory + 46, "b")), Contains("the local header names another entry"));
  CHECK_THAT(open_error(patched(0, "PK\x03\x05")), Contains("bad local header signature"));
  // zip64 extra fields that are too short, and a zip64 locator pointing nowhere.
  const std::string z64 = small_checkpoint(true);
  REQUIRE(outcome(z64) == "ok");
  const std::size_t z64_directory = z64.find(std::string("PK\x01\x02", 4));
  std::string short_extra = z64;
  short_extra.replace(z64_directory + 46 + 16 + 2, 2, u16le(8));  // the zip64 field claims 8 of its 24 bytes
  CHECK_THAT(open_error(short_extra), Contains("zip64 extra field is too short"));
  std::string bad_locator = z64;
  bad_locator.replace(z64.size() - 22 - 20 + 8, 8, u64le(z64.size()));
  CHECK_THAT(open_error(bad_locator), Contains("zip64 end record offset"));
  std::string bad_record = z64;
  bad_record.replace(z64.size() - 22 - 20 + 8, 8, u64le(0));
  CHECK_THAT(open_error(bad_record), Contains("bad zip64 end record signature"));

  // Archives that are not checkpoints.
  CHECK_THAT(open_error(make_zip({})), Contains("not a torch.save checkpoint (no <prefix>/data.pkl entry)"));
  CHECK_THAT(open_error(make_zip({{"data.pkl", "x"}})), Contains("no <prefix>/data.pkl entry"));
  CHECK_THAT(open_error(make_zip({{"a/b/data.pkl", "x"}})), Contains("no <prefix>/data.pkl entry"));
  CHECK_THAT(open_error(make_zip({{"a/data.pkl", "x"}, {"b/data.pkl", "x"}})),
             Contains("several checkpoints ('a/data.pkl' and 'b/data.pkl')"));
  CHECK_THAT(open_error(make_zip({{"a/data.pkl", "x"}, {"a/data.pkl", "x"}})), Contains("appears twice"));
  CHECK(io::WeightsFile::from_memory(make_zip({{"a/data.pkl", Pickle{}.proto().op('}').stop().b}})).format() ==
        io::WeightsFormat::torch);
}

TEST_CASE("every truncation and many corruptions of a checkpoint raise file_error, never a crash",
          "[io][torch][hostile]") {
  // Every prefix of a real F16 checkpoint and of a hand-built one.
  for (const std::string& bytes : {read_bytes(fixture("model_f16.bin")), small_checkpoint(), small_checkpoint(true)}) {
    std::size_t bad = 0;
    std::string first;
    for (std::size_t n = 0; n < bytes.size(); ++n) {
      const std::string result = outcome(bytes.substr(0, n), /*weights_file=*/n % 2 == 0);
      if (result != "file_error" && bad++ == 0) first = std::to_string(n) + ": " + result;
    }
    INFO(first);
    CHECK(bad == 0);
    CHECK(outcome(bytes) == "ok");
  }
  // Truncated files on disk through every entry point.
  TempDir dir;
  const std::string bytes = read_bytes(fixture("model_f32.bin"));
  for (std::size_t n : {std::size_t{0}, std::size_t{3}, std::size_t{100}, bytes.size() / 2, bytes.size() - 23}) {
    write_bytes(dir.file("t.bin"), bytes.substr(0, n));
    CHECK_THROWS_AS(io::WeightsFile(dir.file("t.bin")), file_error);
    CHECK_THROWS_AS(io::load_model(fixture("config.json"), dir.file("t.bin")), file_error);
  }
  // Every byte of a small checkpoint changed a few ways: it opens and reads, or raises file_error.
  const std::string small = small_checkpoint();
  std::size_t bad = 0;
  std::string first;
  for (std::size_t i = 0; i < small.size(); ++i) {
    for (unsigned char delta : {0x01, 0x80, 0xFF}) {
      std::string s = small;
      s[i] = static_cast<char>(static_cast<unsigned char>(s[i]) ^ delta);
      const std::string result = outcome(s);
      if (result != "ok" && result != "file_error" && bad++ == 0) first = std::to_string(i) + ": " + result;
    }
  }
  INFO(first);
  CHECK(bad == 0);
}

// ================================================================================================
// Model directories, hub configs, conversion, growth
// ================================================================================================

TEST_CASE("load_model(dir) loads a hub directory, preferring model.safetensors", "[io][torch]") {
  TempDir dir;
  const auto copy = [&](const std::string& from, const std::string& to) {
    write_bytes(dir.file(to), read_bytes(fixture(from)));
  };
  copy("config.json", "config.json");
  copy("model_f32.bin", "pytorch_model.bin");
  auto bin = io::load_model(dir.str());
  auto twin = io::load_model(fixture("config.json"), fixture("model.safetensors"));
  CHECK(same_bits(fixture_logits(bin), fixture_logits(twin)));
  auto bin64 = io::load_model<presets::Dynamic<double>>(dir.str(), cpu{});
  CHECK(bin64.vocab_size() == 40);

  // Both files: model.safetensors wins (here the F16 twin, so the values tell which was read).
  copy("model_f16.safetensors", "model.safetensors");
  auto both = io::load_model(dir.str());
  auto f16 = io::load_model(fixture("config.json"), fixture("model_f16.bin"));
  CHECK(same_bits(parameters_of(both)[0].second, parameters_of(f16)[0].second));
  CHECK(io::model_directory_files(dir.str()).second == dir.file("model.safetensors"));

  // What is missing is named with the directory.
  std::filesystem::remove(dir.file("model.safetensors"));
  std::filesystem::remove(dir.file("pytorch_model.bin"));
  CHECK_THAT(message_of<file_error>([&] { io::load_model(dir.str()); }),
             Contains(dir.str() + ": the model directory has neither model.safetensors nor pytorch_model.bin"));
  write_bytes(dir.file("pytorch_model.bin.index.json"), "{}");
  CHECK_THAT(message_of<file_error>([&] { io::load_model(dir.str()); }), Contains("sharded checkpoints"));
  std::filesystem::remove(dir.file("config.json"));
  copy("model_f32.bin", "pytorch_model.bin");
  CHECK_THAT(message_of<file_error>([&] { io::load_model(dir.str()); }),
             Contains(dir.str() + ": the model directory has no config.json"));
  CHECK_THAT(message_of<file_error>([&] { io::load_model(dir.file("pytorch_model.bin")); }),
             Contains("pytorch_model.bin is not a directory"));
  CHECK_THAT(message_of<file_error>([&] { io::load_model(dir.file("nothing")); }), Contains("is not a directory"));
  // The two-path overload is still the one chosen for two strings.
  std::string config = fixture("config.json"), weights = fixture("model_f32.bin");
  CHECK(io::load_model(config, weights).vocab_size() == 40);
}

TEST_CASE("hub configs: model-changing keys are checked, the others knowingly ignored", "[io][torch][config]") {
  const ModelConfig c = io::read_config(fixture("config.json"), 40);
  CHECK(c.num_layers == 2);
  CHECK(c.hidden_size == 16);
  CHECK(c.num_heads == 2);
  CHECK(c.vocab_size == 40);
  CHECK(c.qkv_tokens == 8);
  CHECK(c.proj_tokens == 6);
  CHECK(c.ffn_tokens == 12);
  CHECK(c.rotary_pct == 0.25);
  CHECK(c.normalization == Normalization::l2_norm_gelu);
  // Without the embedding's rows there is no vocabulary size.
  CHECK_THAT(message_of<config_error>([&] { io::read_config(fixture("config.json")); }),
             Contains("missing key \"vocab_size\""));

  const io::Json::Object hub = io::parse_json(io::read_text_file(fixture("config.json"))).as_object();
  const auto with = [&](const std::string& key, const io::Json& value) {
    io::Json::Object o = hub;
    o[key] = value;
    return io::Json(o).dump();
  };
  // Ignored: they do not change the model.
  for (const auto& [key, value] :
       std::vector<std::pair<std::string, io::Json>>{{"torch_dtype", io::Json("bfloat16")},
                                                     {"seq_length", io::Json(8192)},
                                                     {"max_position_embeddings", io::Json(4)},
                                                     {"architectures", io::Json(io::Json::Array{io::Json("X")})},
                                                     {"model_type", io::Json("something")},
                                                     {"transformers_version", io::Json("9.9")}}) {
    INFO(key);
    CHECK(io::parse_config(with(key, value), "hub.json", 40) == c);
  }
  // Checked: these would change the model.
  CHECK_THAT(config_error_of(with("gpt_j_residual", io::Json(true)), 40), Contains("gpt_j_residual must be false"));
  CHECK_THAT(config_error_of(with("gpt_j_residual", io::Json("no")), 40), Contains("gpt_j_residual must be false"));
  CHECK_THAT(config_error_of(with("norm", io::Json("rmsnorm")), 40), Contains("norm = \"rmsnorm\" is not supported"));
  CHECK_THAT(config_error_of(with("final_norm", io::Json("rmsnorm")), 40), Contains("final_norm"));
  CHECK_THAT(config_error_of(with("pos_emb", io::Json("learned")), 40), Contains("pos_emb"));
  CHECK_THAT(config_error_of(with("no_weight_tying", io::Json(true)), 40), Contains("no_weight_tying must be false"));
  CHECK_THAT(config_error_of(with("vocab_size", io::Json(41)), 40), Contains("vocab_size 41 exceeds the 40 rows"));

  // A huge num_layers allocates nothing per layer while parsing or writing (a fuzzer finding: 30M
  // layers made parse_config allocate gigabytes); a list of the wrong length is refused first.
  const ModelConfig huge = io::parse_config(with("num_layers", io::Json(2147483647)), "hub.json", 40);
  CHECK(huge.num_layers == 2147483647);
  CHECK(huge.per_layer.empty());
  CHECK_THAT(io::config_to_json(huge), Contains("\"num_layers\": 2147483647") && Contains("\"ffn_slot_num\": 12"));
  io::Json::Object listed = hub;
  listed["num_layers"] = io::Json(2147483647);
  listed["ffn_slot_num"] = io::Json(io::Json::Array{io::Json(12), io::Json(12)});
  CHECK_THAT(config_error_of(io::Json(listed).dump(), 40),
             Contains("ffn_slot_num has 2 entries for 2147483647 layers"));
}

TEST_CASE("convert_to_safetensors writes F32 (F64 stays F64) atomically and round-trips", "[io][torch]") {
  TempDir dir;
  // F16 .bin -> F32 safetensors holding the F16 values exactly.
  io::convert_to_safetensors(fixture("model_f16.bin"), dir.file("out.safetensors"));
  io::SafetensorsReader out(dir.file("out.safetensors"));
  io::SafetensorsReader f16(fixture("model_f16.safetensors"));
  CHECK(out.metadata().at("format") == "pt");
  REQUIRE(out.tensors().size() == f16.tensors().size());
  for (const auto& [name, info] : out.tensors()) {
    INFO(name);
    CHECK(info.dtype == io::DType::F32);
    CHECK(same_bits(tensor_values(out, name), tensor_values(f16, name)));
  }
  auto converted = io::load_model(fixture("config.json"), dir.file("out.safetensors"));
  auto original = io::load_model(fixture("config.json"), fixture("model_f16.bin"));
  CHECK(same_bits(fixture_logits(converted), fixture_logits(original)));

  // F32 .bin with shared storages -> the twin's values; F64 stays F64; safetensors sources keep metadata.
  io::convert_to_safetensors(fixture("shared_storage.bin"), dir.file("shared.safetensors"));
  io::SafetensorsReader shared(dir.file("shared.safetensors"));
  io::SafetensorsReader twin(fixture("model.safetensors"));
  for (const auto& [name, info] : twin.tensors())
    CHECK(same_bits(tensor_values(shared, name), tensor_values(twin, name)));
  CHECK(shared.info("extra.scalar").shape.rank() == 0);
  CHECK(shared.info("extra.empty").shape == Shape{0});
  const std::vector<double> d{0.1, -2.5e-300, 3.0};
  write_bytes(dir.file("d.bin"), torch_zip(state_dict_pickle({{"d", "k", 3, 0, {3}, {1}, "DoubleStorage"}}).stop().b,
                                           {{"k", std::string(reinterpret_cast<const char*>(d.data()), 24)}}));
  io::convert_to_safetensors(dir.file("d.bin"), dir.file("d.safetensors"));
  io::SafetensorsReader doubles(dir.file("d.safetensors"));
  CHECK(doubles.info("d").dtype == io::DType::F64);
  std::vector<double> back(3);
  doubles.read("d", Shape{3}, back.data());
  CHECK(same_bits(back, d));
  io::convert_to_safetensors(dir.file("d.safetensors"), dir.file("d2.safetensors"));
  CHECK(read_bytes(dir.file("d2.safetensors")) == read_bytes(dir.file("d.safetensors")));

  // A refused source leaves an existing destination untouched and no temporary file behind.
  const std::string before = read_bytes(dir.file("out.safetensors"));
  CHECK_THROWS_AS(io::convert_to_safetensors(fixture("malicious.bin"), dir.file("out.safetensors")), file_error);
  CHECK_THROWS_AS(io::convert_to_safetensors(fixture("transposed.bin"), dir.file("out.safetensors")), file_error);
  CHECK(read_bytes(dir.file("out.safetensors")) == before);
  write_bytes(dir.file("meta.bin"), torch_zip(state_dict_pickle({{"__metadata__", "k", 1, 0, {1}, {1}}}).stop().b,
                                              {{"k", std::string(4, '\0')}}));
  CHECK_THAT(
      message_of<file_error>([&] { io::convert_to_safetensors(dir.file("meta.bin"), dir.file("m.safetensors")); }),
      Contains("a tensor named '__metadata__' cannot be written to safetensors"));
  CHECK(dir.entries() == std::vector<std::string>{"d.bin", "d.safetensors", "d2.safetensors", "meta.bin",
                                                  "out.safetensors", "shared.safetensors"});
}

TEST_CASE("load_weights and load_weights_for_growth take torch checkpoints and any reader", "[io][torch]") {
  const ModelConfig config = io::read_config(fixture("config.json"), 40);
  auto twin = io::load_model(fixture("config.json"), fixture("model.safetensors"));
  FloatModel a(config), b(config), c(config);
  io::load_weights(a, fixture("model_bf16.bin"));
  io::TorchCheckpointReader reader(fixture("model_bf16.bin"));
  io::load_weights(b, reader);
  io::WeightsFile file(fixture("model_bf16.safetensors"));
  io::load_weights(c, file);
  CHECK(same_bits(fixture_logits(a), fixture_logits(b)));
  CHECK(same_bits(fixture_logits(a), fixture_logits(c)));

  // A grown model (more FFN and Q/K/V tokens) loads the small .bin into its first rows.
  ModelConfig bigger = config;
  bigger.ffn_tokens = 20;
  bigger.qkv_tokens = 9;
  FloatModel grown(bigger);
  io::load_weights_for_growth(grown, fixture("model_f32.bin"));
  io::TorchCheckpointReader f32(fixture("model_f32.bin"));
  const auto rows = tensor_values(f32, "sequential.2.mlp.key_param_tokens");
  const auto params = parameters_of(grown);
  for (const auto& [name, values] : params) {
    if (name != "sequential.2.mlp.key_param_tokens") continue;
    REQUIRE(values.size() == 20 * 16);
    CHECK(std::vector<float>(values.begin(), values.begin() + 12 * 16) == rows);
  }
  io::load_weights_for_growth(grown, f32);
  CHECK_THAT(message_of<file_error>([&] { io::load_weights(grown, fixture("model_f32.bin")); }),
             Contains("model_f32.bin: tensor 'sequential.2.attention.query.key_param_tokens' has shape [8, 16], "
                      "expected [9, 16]"));
  (void)twin;
}

TEST_CASE("load_model refuses a .bin whose tensors need more bytes than the file holds (aliased views)",
          "[io][torch][hostile]") {
  // Every tensor of the fixture's model a view of the same storage at offset 0: each one is valid by
  // itself, but together they claim far more data than the file holds.
  const ModelConfig config = io::read_config(fixture("config.json"), 40);
  std::int64_t largest = 0;
  std::uint64_t total = 0;
  std::vector<FakeTensor> tensors;
  for (const io::ParameterShape& p : io::parameter_shapes(config)) {
    std::vector<std::int64_t> sizes, strides(static_cast<std::size_t>(p.shape.rank()), 1);
    for (int i = 0; i < p.shape.rank(); ++i) sizes.push_back(p.shape[i]);
    for (std::size_t i = sizes.size(); i-- > 1;) strides[i - 1] = strides[i] * sizes[i];
    largest = std::max<std::int64_t>(largest, p.shape.numel());
    total += static_cast<std::uint64_t>(p.shape.numel()) * 4;
    tensors.push_back({p.name, "0", 0, 0, sizes, strides});
  }
  for (auto& t : tensors) t.storage_numel = largest;
  const std::vector<float> storage(static_cast<std::size_t>(largest), 0.5f);
  const std::string bytes = torch_zip(state_dict_pickle(tensors).stop().b, {{"0", floats_bytes(storage)}});
  REQUIRE(total > bytes.size());
  TempDir dir;
  const std::string path = dir.file("aliased.bin");
  write_bytes(path, bytes);
  CHECK(io::TorchCheckpointReader(path).tensors().size() == io::parameter_shapes(config).size());
  CHECK(message_of<file_error>([&] { io::load_model(fixture("config.json"), path); }) ==
        "file error: " + path + ": the tensors that " + fixture("config.json") + " describes take " +
            std::to_string(total) + " bytes as stored, more than the file's " + std::to_string(bytes.size()) +
            " bytes (do tensors share their data?)");
  // The fixture's own shared storage (views side by side) loads.
  CHECK(io::load_model(fixture("config.json"), fixture("shared_storage.bin")).vocab_size() == 40);
}

}  // namespace test_io_torch
