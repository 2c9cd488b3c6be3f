// Safetensors: writing and reading F64/F32/F16/BF16 tensors, wrong shapes and names, hostile and truncated files.
#include "io_test_util.hpp"

// The file's own namespace: the test programs compile several test files as one translation unit
// (tests/CMakeLists.txt, TOKENFORMER_UNITY_TESTS), where helpers of the same name must not collide.
namespace test_io_safetensors {

using namespace tokenformer;
using namespace io_test;

// ================================================================================================
// safetensors
// ================================================================================================

TEST_CASE("SafetensorsWriter writes float and double tensors that read back exactly", "[io][safetensors]") {
  TempDir dir;
  const std::string path = dir.file("t.safetensors");
  std::vector<float> f = test_util::random_vector<float>(6, 1);
  f[1] = -0.0f;
  f[2] = std::numeric_limits<float>::infinity();
  f[3] = std::numeric_limits<float>::denorm_min();
  f[4] = std::numeric_limits<float>::max();
  const std::vector<double> d{1.0 / 3.0, -1e300, std::numeric_limits<double>::denorm_min(), 0.0};
  const float scalar = 2.75f;
  const std::vector<float> big = test_util::random_vector<float>(3 * 4 * 5 * 6, 2);
  Tensor<float> tensor(Shape{7, 3});
  const std::vector<float> tensor_values = test_util::random_vector<float>(21, 3);
  tensor.copy_from_host(tensor_values.data());

  io::SafetensorsWriter w;
  w.add("layer.f", Shape{2, 3}, f.data());
  w.add("layer.d", Shape{4}, d.data());
  w.add("scalar", Shape{}, &scalar);
  w.add("empty", Shape{0, 5}, static_cast<const float*>(nullptr));
  w.add("rank4", Shape{3, 4, 5, 6}, big.data());
  w.add("tensor", tensor);
  w.set_metadata("format", "pt");
  w.set_metadata("note", "caf\xC3\xA9 \"quoted\"");
  w.write(path);
  CHECK(dir.entries() == std::vector<std::string>{"t.safetensors"});

  // The header length is a multiple of 8, so the data is aligned.
  const std::string bytes = read_bytes(path);
  REQUIRE(bytes.size() >= 8);
  std::uint64_t header_size = 0;
  for (int i = 7; i >= 0; --i)
    header_size = header_size << 8 | static_cast<unsigned char>(bytes[static_cast<std::size_t>(i)]);
  CHECK(header_size % 8 == 0);
  CHECK(bytes.size() == 8 + header_size + (6 + 1 + 0 + 360 + 21) * 4 + 4 * 8);

  io::SafetensorsReader r(path);
  CHECK(r.path() == path);
  CHECK(r.tensors().size() == 6);
  CHECK(r.metadata() == std::map<std::string, std::string>{{"format", "pt"}, {"note", "caf\xC3\xA9 \"quoted\""}});
  CHECK(r.contains("layer.f"));
  CHECK_FALSE(r.contains("__metadata__"));
  CHECK(r.info("layer.f").dtype == io::DType::F32);
  CHECK(r.info("layer.d").dtype == io::DType::F64);
  CHECK(r.info("layer.f").shape == Shape{2, 3});
  CHECK(r.info("scalar").shape == Shape{});
  CHECK(r.info("empty").shape == Shape{0, 5});
  // Data is laid out in the order added, back to back.
  CHECK(r.info("layer.f").begin == 0);
  CHECK(r.info("layer.f").end == 24);
  CHECK(r.info("layer.d").begin == 24);
  CHECK(r.info("layer.d").end == 56);
  CHECK(r.info("scalar").begin == 56);
  CHECK(r.info("empty").begin == r.info("empty").end);

  std::vector<float> f2(6);
  r.read("layer.f", Shape{2, 3}, f2.data());
  CHECK(same_bits(f, f2));
  std::vector<double> d2(4);
  r.read("layer.d", Shape{4}, d2.data());
  CHECK(same_bits(d, d2));
  float scalar2 = 0.0f;
  r.read("scalar", Shape{}, &scalar2);
  CHECK(scalar2 == 2.75f);
  std::vector<float> big2(big.size());
  r.read("rank4", Shape{3, 4, 5, 6}, big2.data());
  CHECK(same_bits(big, big2));
  Tensor<float> tensor2(Shape{7, 3});
  r.read("tensor", tensor2);
  CHECK(same_bits(tensor_values, std::vector<float>(tensor2.data(), tensor2.data() + 21)));
  Tensor<float> empty2(Shape{0, 5});
  CHECK_NOTHROW(r.read("empty", empty2));

  // Conversions on read: F32 into double is exact; F64 into float rounds.
  std::vector<double> f_as_double(6);
  r.read("layer.f", Shape{2, 3}, f_as_double.data());
  for (std::size_t i = 0; i < 6; ++i) CHECK(bits_of(f_as_double[i]) == bits_of(static_cast<double>(f[i])));
  std::vector<float> d_as_float(4);
  r.read("layer.d", Shape{4}, d_as_float.data());
  CHECK(d_as_float[0] == static_cast<float>(1.0 / 3.0));

  // Writing again replaces the file with the new content.
  io::SafetensorsWriter w2;
  w2.add("only", Shape{1}, &scalar);
  w2.write(path);
  io::SafetensorsReader r2(path);
  CHECK(r2.tensors().size() == 1);
  CHECK(r2.metadata().empty());
}

TEST_CASE("SafetensorsWriter rejects duplicate and reserved names and unwritable paths", "[io][safetensors]") {
  const float x = 1.0f;
  io::SafetensorsWriter w;
  w.add("a", Shape{1}, &x);
  CHECK_THROWS_WITH(w.add("a", Shape{1}, &x), "argument error: tensor 'a' added twice");
  CHECK_THROWS_AS(w.add("__metadata__", Shape{1}, &x), argument_error);
  TempDir dir;
  CHECK_THROWS_WITH(w.write(dir.file("missing/sub/t.safetensors")),
                    Contains("file error: cannot create ") && Contains("missing/sub/t.safetensors.tmp."));
}

TEST_CASE("F16 and BF16 tensors convert to float exactly, bit pattern by bit pattern", "[io][safetensors]") {
  const float inf = std::numeric_limits<float>::infinity();
  const std::vector<std::pair<std::uint16_t, float>> half{
      {0x3C00, 1.0f},
      {0xC000, -2.0f},
      {0x3800, 0.5f},
      {0x3555, 0.333251953125f},        // 2^-2 * (1 + 341/1024)
      {0x7BFF, 65504.0f},               // largest finite half
      {0x0400, std::ldexp(1.0f, -14)},  // smallest normal
      {0x0001, std::ldexp(1.0f, -24)},  // smallest subnormal
      {0x8001, -std::ldexp(1.0f, -24)},
      {0x0200, std::ldexp(1.0f, -15)},     // subnormal, one bit
      {0x03FF, std::ldexp(1023.0f, -24)},  // largest subnormal
      {0x0000, 0.0f},
      {0x8000, -0.0f},
      {0x7C00, inf},
      {0xFC00, -inf},
  };
  const std::vector<std::pair<std::uint16_t, float>> bf16{
      {0x3F80, 1.0f},
      {0xC000, -2.0f},
      {0x3E80, 0.25f},
      {0x4049, 3.140625f},                // float bits 0x40490000
      {0x7F7F, std::ldexp(255.0f, 120)},  // largest finite: (2 - 2^-7) * 2^127
      {0x0080, std::ldexp(1.0f, -126)},   // smallest normal
      {0x0001, std::ldexp(1.0f, -133)},   // subnormal (float bits 0x00010000)
      {0x8000, -0.0f},
      {0x7F80, inf},
      {0xFF80, -inf},
  };
  std::vector<std::uint16_t> half_bits, bf16_bits;
  for (const auto& [b, v] : half) half_bits.push_back(b);
  for (const auto& [b, v] : bf16) bf16_bits.push_back(b);
  half_bits.push_back(0x7E00);  // NaN
  bf16_bits.push_back(0x7FC0);  // NaN
  const std::size_t nh = half_bits.size(), nb = bf16_bits.size();
  const std::string header = "{\"h\":{\"dtype\":\"F16\",\"shape\":[" + std::to_string(nh) + "],\"data_offsets\":[0," +
                             std::to_string(2 * nh) + "]},\"b\":{\"dtype\":\"BF16\",\"shape\":[1," +
                             std::to_string(nb) + "],\"data_offsets\":[" + std::to_string(2 * nh) + "," +
                             std::to_string(2 * (nh + nb)) + "]}}";
  TempDir dir;
  const std::string path = dir.file("half.safetensors");
  write_bytes(path, safetensors_bytes(header, le16s(half_bits) + le16s(bf16_bits)));

  io::SafetensorsReader r(path);
  CHECK(r.info("h").dtype == io::DType::F16);
  CHECK(r.info("b").dtype == io::DType::BF16);
  std::vector<float> h(nh), b(nb);
  r.read("h", Shape{static_cast<index_t>(nh)}, h.data());
  r.read("b", Shape{1, static_cast<index_t>(nb)}, b.data());
  for (std::size_t i = 0; i < half.size(); ++i) {
    INFO("half 0x" << std::hex << half[i].first);
    CHECK(bits_of(h[i]) == bits_of(half[i].second));
    CHECK(bits_of(io::half_to_float(half[i].first)) == bits_of(half[i].second));
  }
  CHECK(std::isnan(h.back()));
  for (std::size_t i = 0; i < bf16.size(); ++i) {
    INFO("bf16 0x" << std::hex << bf16[i].first);
    CHECK(bits_of(b[i]) == bits_of(bf16[i].second));
    CHECK(bits_of(io::bfloat16_to_float(bf16[i].first)) == bits_of(bf16[i].second));
  }
  CHECK(std::isnan(b.back()));

  // Into double: the same values, exactly.
  std::vector<double> hd(nh);
  r.read("h", Shape{static_cast<index_t>(nh)}, hd.data());
  for (std::size_t i = 0; i < half.size(); ++i) CHECK(bits_of(hd[i]) == bits_of(static_cast<double>(half[i].second)));

  // Every one of the 2^16 half patterns: finite ones equal their exact value m * 2^(e-25).
  for (std::uint32_t bits = 0; bits < 0x10000; ++bits) {
    const std::uint32_t e = (bits >> 10) & 0x1F, m = bits & 0x3FF;
    const float sign = (bits & 0x8000) ? -1.0f : 1.0f;
    if (e == 31) continue;
    const float expected = e == 0 ? sign * std::ldexp(static_cast<float>(m), -24)
                                  : sign * std::ldexp(static_cast<float>(m | 0x400), static_cast<int>(e) - 25);
    if (bits_of(io::half_to_float(static_cast<std::uint16_t>(bits))) != bits_of(expected))
      FAIL("half 0x" << std::hex << bits << " converts to " << io::half_to_float(static_cast<std::uint16_t>(bits)));
  }
}

TEST_CASE("reading a tensor with the wrong shape or a missing name throws file_error naming it", "[io][safetensors]") {
  TempDir dir;
  const std::string path = dir.file("t.safetensors");
  const std::vector<float> v(6, 1.0f);
  io::SafetensorsWriter w;
  w.add("block.weight", Shape{2, 3}, v.data());
  w.write(path);
  io::SafetensorsReader r(path);
  std::vector<float> out(6);
  CHECK(message_of<file_error>([&] {
          r.read("block.weight", Shape{3, 2}, out.data());
        }) == "file error: " + path + ": tensor 'block.weight' has shape [2, 3], expected [3, 2]");
  CHECK_THAT(message_of<file_error>([&] { r.read("block.weight", Shape{6}, out.data()); }),
             Contains("tensor 'block.weight' has shape [2, 3], expected [6]"));
  Tensor<float> wrong(Shape{2, 3, 1});
  CHECK_THAT(message_of<file_error>([&] { r.read("block.weight", wrong); }),
             Contains("tensor 'block.weight' has shape [2, 3], expected [2, 3, 1]"));
  CHECK(message_of<file_error>([&] { r.read("block.bias", Shape{3}, out.data()); }) ==
        "file error: " + path + ": missing tensor 'block.bias'");
  CHECK_THAT(message_of<file_error>([&] { r.info("nope"); }), Contains("missing tensor 'nope'"));
  // The reader still works after the errors.
  r.read("block.weight", Shape{2, 3}, out.data());
  CHECK(out == v);
}

TEST_CASE("hostile safetensors files raise file_error, never a crash", "[io][safetensors][hostile]") {
  TempDir dir;
  const std::string f32x2(8, '\0');  // two F32 zeros
  const auto entry = [](const std::string& dtype, const std::string& shape, const std::string& offsets) {
    return "{\"w\":{\"dtype\":" + dtype + ",\"shape\":" + shape + ",\"data_offsets\":" + offsets + "}}";
  };
  struct Case {
    const char* what;
    std::string bytes;
    std::string expected;
  };
  const std::vector<Case> cases{
      {"empty file", "", "is not a safetensors file: shorter than its 8-byte header length"},
      {"7-byte file", std::string(7, '\x01'), "is not a safetensors file: shorter than its 8-byte header length"},
      {"header length larger than the file", le64(100) + "{}", "header length 100 exceeds the file size 10"},
      {"header length one more than the file", le64(3) + "{}", "header length 3 exceeds the file size 10"},
      {"header length 2^63", le64(std::uint64_t{1} << 63) + "{}",
       "header length 9223372036854775808 exceeds the file size 10"},
      {"header length 2^64-1", le64(~std::uint64_t{0}) + "{}", "header length 18446744073709551615 exceeds"},
      {"header length 2^28", le64(std::uint64_t{1} << 28) + "{}", "header length 268435456 exceeds"},
      {"header length zero", le64(0), "header: malformed JSON at byte 0: expected a value"},
      {"header not JSON", safetensors_bytes("hello world"), "header: malformed JSON at byte 0"},
      {"header JSON with trailing bytes", safetensors_bytes("{} {}"), "header: malformed JSON at byte 3"},
      {"header with a NUL byte", safetensors_bytes(std::string("{}\0\0", 4)), "header: malformed JSON at byte 2"},
      {"header deeply nested", safetensors_bytes(std::string(1000, '[')), "nesting deeper than 64 levels"},
      {"header JSON an array", safetensors_bytes("[]"), "header must be an object"},
      {"header JSON a string", safetensors_bytes("\"x\""), "header must be an object"},
      {"entry not an object", safetensors_bytes("{\"w\": 1}"), "tensor 'w': header entry must be an object"},
      {"entry missing dtype", safetensors_bytes("{\"w\":{\"shape\":[2],\"data_offsets\":[0,8]}}", f32x2),
       "tensor 'w': header entry needs dtype, shape and data_offsets"},
      {"entry missing shape", safetensors_bytes("{\"w\":{\"dtype\":\"F32\",\"data_offsets\":[0,8]}}", f32x2),
       "tensor 'w': header entry needs dtype, shape and data_offsets"},
      {"entry missing data_offsets", safetensors_bytes("{\"w\":{\"dtype\":\"F32\",\"shape\":[2]}}", f32x2),
       "tensor 'w': header entry needs dtype, shape and data_offsets"},
      {"dtype I8", safetensors_bytes(entry("\"I8\"", "[8]", "[0,8]"), f32x2),
       "tensor 'w': unsupported dtype I8 (expected F64, F32, F16 or BF16)"},
      {"dtype F8", safetensors_bytes(entry("\"F8\"", "[8]", "[0,8]"), f32x2), "tensor 'w': unsupported dtype F8"},
      {"dtype F8_E4M3", safetensors_bytes(entry("\"F8_E4M3\"", "[8]", "[0,8]"), f32x2), "unsupported dtype F8_E4M3"},
      {"dtype lower case", safetensors_bytes(entry("\"f32\"", "[2]", "[0,8]"), f32x2), "unsupported dtype f32"},
      {"dtype a number", safetensors_bytes(entry("32", "[2]", "[0,8]"), f32x2), "tensor 'w' dtype must be a string"},
      {"shape not an array", safetensors_bytes(entry("\"F32\"", "2", "[0,8]"), f32x2),
       "tensor 'w' shape must be an array"},
      {"negative dim", safetensors_bytes(entry("\"F32\"", "[-2]", "[0,8]"), f32x2),
       "tensor 'w' shape must be an integer in [0, 1099511627776], got -2"},
      {"non-integer dim", safetensors_bytes(entry("\"F32\"", "[1.5]", "[0,8]"), f32x2),
       "tensor 'w' shape must be an integer in [0, 1099511627776], got 1.5"},
      {"huge dim", safetensors_bytes(entry("\"F32\"", "[1e20]", "[0,8]"), f32x2), "got 1e+20"},
      {"dim 2^40 + 1", safetensors_bytes(entry("\"F32\"", "[1099511627777]", "[0,8]"), f32x2), "got 1099511627777"},
      {"dim a string", safetensors_bytes(entry("\"F32\"", "[\"2\"]", "[0,8]"), f32x2),
       "tensor 'w' shape must be a number"},
      {"shape product overflows", safetensors_bytes(entry("\"F32\"", "[1099511627776,1099511627776]", "[0,8]"), f32x2),
       "tensor 'w': shape is too large"},
      {"shape product 2^80 in four dims",
       safetensors_bytes(entry("\"F64\"", "[1048576,1048576,1048576,1048576]", "[0,8]"), f32x2),
       "tensor 'w': shape is too large"},
      {"shape product wraps to a small number",
       safetensors_bytes(entry("\"F32\"", "[4294967296,4294967296,1,2]", "[0,8]"), f32x2),
       "tensor 'w': shape is too large"},
      {"rank 5", safetensors_bytes(entry("\"F32\"", "[1,1,1,1,2]", "[0,8]"), f32x2),
       "tensor 'w': rank 5 is above the supported 4"},
      {"rank 1000", safetensors_bytes(entry("\"F32\"", "[1" + repeat(",1", 999) + "]", "[0,8]"), f32x2),
       "tensor 'w': rank 1000 is above the supported 4"},
      {"data_offsets not an array", safetensors_bytes(entry("\"F32\"", "[2]", "8"), f32x2),
       "tensor 'w' data_offsets must be an array"},
      {"data_offsets of one number", safetensors_bytes(entry("\"F32\"", "[2]", "[8]"), f32x2),
       "tensor 'w': data_offsets must be [begin, end]"},
      {"data_offsets of three numbers", safetensors_bytes(entry("\"F32\"", "[2]", "[0,8,8]"), f32x2),
       "tensor 'w': data_offsets must be [begin, end]"},
      {"negative data offset", safetensors_bytes(entry("\"F32\"", "[2]", "[-8,0]"), f32x2),
       "tensor 'w' data_offsets must be an integer in [0, 4503599627370496], got -8"},
      {"fractional data offset", safetensors_bytes(entry("\"F32\"", "[2]", "[0,7.5]"), f32x2), "got 7.5"},
      {"huge data offset", safetensors_bytes(entry("\"F32\"", "[2]", "[0,1e300]"), f32x2),
       "got 1.0000000000000001e+300"},
      {"data_offsets end before begin", safetensors_bytes(entry("\"F32\"", "[0]", "[8,4]"), f32x2),
       "tensor 'w': data_offsets end before begin"},
      {"data end beyond the file", safetensors_bytes(entry("\"F32\"", "[100]", "[0,400]"), f32x2),
       "tensor 'w': data ends at byte 400 but the file holds only 8 data bytes (truncated file?)"},
      {"data begin and end beyond the file",
       safetensors_bytes(entry("\"F32\"", "[2]", "[4503599627370488,4503599627370496]"), f32x2),
       "tensor 'w': data ends at byte 4503599627370496 but the file holds only 8 data bytes"},
      {"byte count smaller than the shape", safetensors_bytes(entry("\"F32\"", "[3]", "[0,8]"), f32x2),
       "tensor 'w': holds 8 bytes but shape [3] of F32 needs 12"},
      {"byte count larger than the shape", safetensors_bytes(entry("\"F16\"", "[2]", "[0,8]"), f32x2),
       "tensor 'w': holds 8 bytes but shape [2] of F16 needs 4"},
      {"empty shape with bytes", safetensors_bytes(entry("\"F64\"", "[0,3]", "[0,8]"), f32x2),
       "tensor 'w': holds 8 bytes but shape [0, 3] of F64 needs 0"},
      {"duplicate tensor names", safetensors_bytes("{\"w\":{},\"w\":{}}"), "duplicate key \"w\""},
      {"metadata not an object", safetensors_bytes("{\"__metadata__\": [1]}"), ": __metadata__ must be an object"},
      {"metadata value not a string", safetensors_bytes("{\"__metadata__\": {\"format\": 1}}"),
       ": __metadata__.format must be a string"},
  };
  int index = 0;
  for (const auto& c : cases) {
    INFO(c.what);
    const std::string path = dir.file("hostile_" + std::to_string(index++) + ".safetensors");
    write_bytes(path, c.bytes);
    const std::string message = message_of<file_error>([&] { io::SafetensorsReader reader(path); });
    CHECK_THAT(message, Contains(c.expected));
    CHECK_THAT(message, Contains(path));
    // load_model goes through the same reader.
    CHECK_THROWS_AS(io::load_model(golden_dir() + "/l2_norm_gelu_f32/config.json", path), file_error);
  }

  // Paths that are not files at all.
  CHECK(message_of<file_error>([&] { io::SafetensorsReader reader(dir.file("does_not_exist")); }) ==
        "file error: cannot open " + dir.file("does_not_exist"));
  std::filesystem::create_directory(dir.file("a_directory"));
  CHECK_THAT(message_of<file_error>([&] { io::SafetensorsReader reader(dir.file("a_directory")); }),
             Contains(dir.file("a_directory")) &&
                 (Contains("cannot read") || Contains("is not a safetensors file: shorter than")));
}

TEST_CASE("a truncated safetensors file is rejected naming the tensor that lost its data",
          "[io][safetensors][hostile]") {
  TempDir dir;
  const std::string path = dir.file("t.safetensors");
  const std::vector<float> a(4, 1.0f), b(16, 2.0f);
  io::SafetensorsWriter w;
  w.add("a", Shape{4}, a.data());
  w.add("b", Shape{4, 4}, b.data());
  w.write(path);
  const auto full = std::filesystem::file_size(path);

  std::filesystem::resize_file(path, full - 4);
  CHECK(message_of<file_error>([&] { io::SafetensorsReader r(path); }) ==
        "file error: " + path +
            ": tensor 'b': data ends at byte 80 but the file holds only 76 data bytes (truncated file?)");
  std::filesystem::resize_file(path, full - 60);  // 'a' still complete, 'b' mostly gone
  CHECK_THAT(message_of<file_error>([&] { io::SafetensorsReader r(path); }),
             Contains("tensor 'b': data ends at byte 80 but the file holds only 20 data bytes"));
  std::filesystem::resize_file(path, full - 80 + 8);  // into 'a'
  CHECK_THAT(message_of<file_error>([&] { io::SafetensorsReader r(path); }),
             Contains("tensor 'a': data ends at byte 16 but the file holds only 8 data bytes"));
  std::filesystem::resize_file(path, 20);  // inside the header
  CHECK_THAT(message_of<file_error>([&] { io::SafetensorsReader r(path); }), Contains("exceeds the file size 20"));

  // A file truncated after it was opened: the read itself fails cleanly.
  w.write(path);
  io::SafetensorsReader r(path);
  std::filesystem::resize_file(path, full - 4);
  std::vector<float> out(16);
  r.read("a", Shape{4}, out.data());
  CHECK(std::vector<float>(out.begin(), out.begin() + 4) == a);
  CHECK(message_of<file_error>([&] {
          r.read("b", Shape{4, 4}, out.data());
        }) == "file error: " + path + ": cannot read tensor 'b' (file truncated?)");
}

TEST_CASE("tensors that overlap, leave gaps or do not cover the data section are rejected, as in the reference",
          "[io][safetensors][hostile]") {
  TempDir dir;
  const auto open = [&](const std::string& header, std::size_t data_bytes) {
    const std::string path = dir.file("layout.safetensors");
    write_bytes(path, safetensors_bytes(header, std::string(data_bytes, '\0')));
    return message_of<file_error>([&] { io::SafetensorsReader r(path); });
  };
  const auto two = [](const std::string& a, const std::string& b) {
    return "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":" + a +
           "},\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":" + b + "}}";
  };
  // Overlapping tensors (the case: both readable, each within the file) and two names for one range.
  CHECK_THAT(open(two("[0,8]", "[4,12]"), 12),
             Contains("tensor 'b' starts at data byte 4, inside tensor 'a' [0, 8) (tensors overlap)"));
  CHECK_THAT(open(two("[0,8]", "[0,8]"), 8), Contains("inside tensor 'a' [0, 8) (tensors overlap)"));
  // A gap between two tensors, and one before the first.
  CHECK_THAT(open(two("[0,8]", "[12,20]"), 20),
             Contains("tensor 'b' starts at data byte 12 but the tensor before it, 'a', ends at byte 8 "
                      "(4 bytes between them belong to no tensor)"));
  CHECK_THAT(open(two("[4,12]", "[12,20]"), 20),
             Contains("tensor 'a' starts at data byte 4 but the data section starts at byte 0"));
  // Data bytes after the last tensor, or data with no tensor at all.
  CHECK_THAT(open(two("[0,8]", "[8,16]"), 20),
             Contains("the tensors end at data byte 16 but the file holds 20 data bytes "
                      "(4 bytes belong to no tensor)"));
  CHECK_THAT(open("{}", 8), Contains("the tensors end at data byte 0 but the file holds 8 data bytes"));
  // Allowed: any order in the header, and empty tensors between others.
  CHECK(open(two("[8,16]", "[0,8]"), 16) == "<nothing thrown>");
  CHECK(open("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
             "\"e\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[8,8]},"
             "\"z\":{\"dtype\":\"F16\",\"shape\":[2],\"data_offsets\":[8,12]}}",
             12) == "<nothing thrown>");
  CHECK(open("{}", 0) == "<nothing thrown>");
  // Our writer and the golden fixtures follow the rule.
  const std::vector<float> v(5, 1.0f);
  io::SafetensorsWriter w;
  w.add("x", Shape{5}, v.data());
  w.add("empty", Shape{0, 3}, v.data());
  w.add("y", Shape{1, 2}, v.data());
  w.write(dir.file("ours.safetensors"));
  CHECK(io::SafetensorsReader(dir.file("ours.safetensors")).tensors().size() == 3);
  CHECK(io::SafetensorsReader(golden_dir() + "/l2_norm_gelu_f32/model.safetensors").tensors().size() > 0);
}

}  // namespace test_io_safetensors
