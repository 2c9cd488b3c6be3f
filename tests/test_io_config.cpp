// Official config files: the golden config, missing keys, bad values, vocab_size from the embedding, round trips.
#include "io_test_util.hpp"

// The file's own namespace: the test programs compile several test files as one translation unit
// (tests/CMakeLists.txt, TOKENFORMER_UNITY_TESTS), where helpers of the same name must not collide.
namespace test_io_config {

using namespace tokenformer;
using namespace io_test;

// ================================================================================================
// Config files
// ================================================================================================

TEST_CASE("parse_config reads the golden config", "[io][config]") {
  const std::string text = io::read_text_file(golden_dir() + "/l2_norm_gelu_f32/config.json");
  const ModelConfig c = io::parse_config(text);
  CHECK(c.num_layers == 2);
  CHECK(c.hidden_size == 64);
  CHECK(c.num_heads == 4);
  CHECK(c.qkv_tokens == 24);
  CHECK(c.proj_tokens == 20);
  CHECK(c.ffn_tokens == 72);
  CHECK(c.vocab_size == 100);
  CHECK(c.rotary_pct == 0.25);
  CHECK(c.normalization == Normalization::l2_norm_gelu);
  CHECK(c.layernorm_epsilon == 1e-5);
  CHECK(c.rotary_base == 10000.0);  // default
  // The embedding's row count wins over vocab_size (official models pad the vocabulary).
  CHECK(io::parse_config(text, "cfg", 128).vocab_size == 128);
  CHECK(io::parse_config(text, "cfg", 100).vocab_size == 100);
  CHECK(io::read_config(golden_dir() + "/l2_norm_gelu_f32/config.json") == c);
  const ModelConfig s = io::read_config(golden_dir() + "/softmax_f32/config.json");
  CHECK(s.normalization == Normalization::softmax);
  CHECK(s.rotary_pct == 0.5);
  CHECK(io::read_config(golden_dir() + "/gelu_l2_norm_f32/config.json").normalization == Normalization::gelu_l2_norm);

  // Keys of training configs that do not change the model are ignored; supported values pass.
  std::string extra = golden_config_with("lr", io::Json(0.0006));
  extra =
      extra.substr(0, extra.size() - 1) +
      R"(,"pos_emb":"rotary","norm":"layernorm_nonparam","final_norm":"layernorm","no_weight_tying":false,"rotary_emb_base":500000})";
  const ModelConfig e = io::parse_config(extra);
  CHECK(e.rotary_base == 500000.0);
  CHECK(e.num_layers == 2);
}

TEST_CASE("a missing required key is a config_error naming it", "[io][config]") {
  for (const char* key : {"num_layers", "hidden_size", "num_attention_heads", "qkv_slot_num", "proj_slot_num",
                          "ffn_slot_num", "vocab_size"}) {
    INFO(key);
    CHECK(config_error_of(golden_config_without(key)) ==
          std::string("config error: cfg.json: missing key \"") + key + "\"");
  }
  // Optional keys fall back to their defaults.
  CHECK(io::parse_config(golden_config_without("rotary_pct")).rotary_pct == 0.25);
  CHECK(io::parse_config(golden_config_without("layernorm_epsilon")).layernorm_epsilon == 1e-5);
  CHECK(io::parse_config(golden_config_without("norm_activation_type")).normalization == Normalization::l2_norm_gelu);
}

TEST_CASE("bad config values are config_errors that say what is accepted", "[io][config]") {
  CHECK_THAT(config_error_of(golden_config_with("norm_activation_type", io::Json("relu"))),
             Contains("unknown norm_activation_type 'relu' (expected l2_norm_gelu, gelu_l2_norm or softmax)"));
  CHECK_THAT(config_error_of(golden_config_with("norm_activation_type", io::Json(1))),
             Contains("norm_activation_type must be a string"));

  for (const io::Json& bad :
       {io::Json(2.5), io::Json(-2), io::Json(0), io::Json("2"), io::Json(-1e10), io::Json(nullptr)}) {
    INFO("num_layers = " << bad.dump());
    CHECK(config_error_of(golden_config_with("num_layers", bad)) ==
          "config error: cfg.json: num_layers must be a positive integer");
  }
  CHECK_THAT(config_error_of(golden_config_with("hidden_size", io::Json(-64))),
             Contains("hidden_size must be a positive integer"));
  CHECK_THAT(config_error_of(golden_config_with("vocab_size", io::Json(100.5))),
             Contains("vocab_size must be a positive integer"));

  CHECK_THAT(config_error_of(golden_config_with("num_attention_heads", io::Json(5))),
             Contains("num_attention_heads (5) must divide hidden_size (64)"));
  // head_dim 16: 16 * 0.1875 = 3 rotary dims, odd.
  CHECK_THAT(config_error_of(golden_config_with("rotary_pct", io::Json(0.1875))),
             Contains("rotary dims int(head_dim * rotary_pct) = 3 must be even"));
  CHECK_THAT(config_error_of(golden_config_with("rotary_pct", io::Json(1.5))),
             Contains("rotary_pct must be in [0, 1]"));
  CHECK_THAT(config_error_of(golden_config_with("rotary_pct", io::Json("0.25"))),
             Contains("rotary_pct must be a number"));
  CHECK_THAT(config_error_of(golden_config_with("layernorm_epsilon", io::Json(0))),
             Contains("layernorm_epsilon must be positive and finite"));
  CHECK_THAT(config_error_of(golden_config_with("rotary_emb_base", io::Json(-1))),
             Contains("rotary_emb_base must be positive and finite"));

  CHECK(config_error_of(golden_config_with("pos_emb", io::Json("learned"))) ==
        "config error: cfg.json: pos_emb = \"learned\" is not supported (this library implements \"rotary\")");
  CHECK_THAT(config_error_of(golden_config_with("norm", io::Json("rmsnorm"))),
             Contains("norm = \"rmsnorm\" is not supported (this library implements \"layernorm_nonparam\")"));
  CHECK_THAT(config_error_of(golden_config_with("final_norm", io::Json(1))),
             Contains("final_norm = 1 is not supported (this library implements \"layernorm\")"));
  CHECK(config_error_of(golden_config_with("no_weight_tying", io::Json(true))) ==
        "config error: cfg.json: no_weight_tying must be false (embeddings are tied)");
  CHECK_THAT(config_error_of(golden_config_with("no_weight_tying", io::Json("false"))),
             Contains("no_weight_tying must be false"));

  // Text that is not a JSON object is a file_error.
  CHECK_THAT(message_of<file_error>([] { io::parse_config("{\"num_layers\": 2,}", "cfg.json"); }),
             Contains("cfg.json: malformed JSON at byte"));
  CHECK_THAT(message_of<file_error>([] { io::parse_config("[1, 2]", "cfg.json"); }),
             Contains("cfg.json must be an object"));
  TempDir dir;
  CHECK_THAT(message_of<file_error>([&] { io::read_config(dir.file("missing.json")); }),
             Contains("cannot open " + dir.file("missing.json")));
}

TEST_CASE("vocab_size may be left to the embedding's row count, but not exceed it", "[io][config]") {
  const std::string text = golden_config_without("vocab_size");
  CHECK(io::parse_config(text, "cfg.json", 128).vocab_size == 128);
  CHECK(config_error_of(text) == "config error: cfg.json: missing key \"vocab_size\"");
  CHECK(config_error_of(golden_config_with("vocab_size", io::Json(200)), 128) ==
        "config error: cfg.json: vocab_size 200 exceeds the 128 rows of the embedding");
  CHECK(io::parse_config(golden_config_with("vocab_size", io::Json(128)), "cfg.json", 128).vocab_size == 128);
}

TEST_CASE("write_config and read_config round-trip a ModelConfig exactly", "[io][config]") {
  ModelConfig golden = io::read_config(golden_dir() + "/l2_norm_gelu_f32/config.json");
  ModelConfig big;
  big.num_layers = 24;
  big.hidden_size = 96;
  big.num_heads = 6;  // head_dim 16, 16 * 0.375 = 6 rotary dims
  big.qkv_tokens = 7;
  big.proj_tokens = 9;
  big.ffn_tokens = 11;
  big.vocab_size = 50257;
  big.rotary_pct = 0.375;
  big.normalization = Normalization::softmax;
  big.layernorm_epsilon = 1e-6;
  big.rotary_base = 500000.0;
  ModelConfig odd = big;
  odd.hidden_size = 40;
  odd.num_heads = 2;     // head_dim 20
  odd.rotary_pct = 0.1;  // int(2.0000000000000004) = 2
  odd.normalization = Normalization::gelu_l2_norm;
  odd.layernorm_epsilon = 1.2345678901234567e-7;
  odd.rotary_base = 10000.5;
  ModelConfig no_rotary = golden;
  no_rotary.rotary_pct = 0.0;

  TempDir dir;
  int i = 0;
  for (const ModelConfig& c : {golden, big, odd, no_rotary}) {
    INFO("config " << i);
    REQUIRE_NOTHROW(c.validate());
    const std::string path = dir.file("config_" + std::to_string(i++) + ".json");
    io::write_config(c, path);
    const ModelConfig back = io::read_config(path);
    CHECK(back == c);
    CHECK(back.layernorm_epsilon == c.layernorm_epsilon);
    CHECK(back.rotary_pct == c.rotary_pct);
  }
  // The file is the official JSON, one key per line, with the implemented fixed values.
  const std::string text = io::read_text_file(dir.file("config_1.json"));
  CHECK_THAT(text, Contains("\n  \"num_layers\": 24,\n") && Contains("\"num_attention_heads\": 6") &&
                       Contains("\"norm_activation_type\": \"softmax\"") && Contains("\"pos_emb\": \"rotary\"") &&
                       Contains("\"no_weight_tying\": false") && Contains("\"rotary_emb_base\": 500000"));
  CHECK(text.back() == '\n');
  // Writing replaces the old file.
  io::write_config(golden, dir.file("config_1.json"));
  CHECK(io::read_config(dir.file("config_1.json")) == golden);
}

TEST_CASE("config integers above the limit are called too large, naming the limit", "[io][config]") {
  // 2^31 is the largest accepted; one more is too large, not "not a positive integer".
  CHECK(io::parse_config(golden_config_with("hidden_size", io::Json(2147483648.0))).hidden_size == 2147483648LL);
  CHECK(config_error_of(golden_config_with("hidden_size", io::Json(2147483649.0))) ==
        "config error: cfg.json: hidden_size = 2147483649 is too large (limit 2147483648)");
  CHECK(config_error_of(golden_config_with("num_layers", io::Json(1e10))) ==
        "config error: cfg.json: num_layers = 10000000000 is too large (limit 2147483648)");
  CHECK_THAT(config_error_of(golden_config_with("vocab_size", io::Json(1e300))),
             Contains("vocab_size = 1.0000000000000001e+300 is too large (limit 2147483648)"));
  CHECK_THAT(config_error_of(golden_config_with("ffn_slot_num", io::Json(4294967296.0))),
             Contains("ffn_slot_num = 4294967296 is too large (limit 2147483648)"));
  // In a per-layer list, and for a pinned scale (which may be 0).
  CHECK_THAT(config_error_of(
                 golden_config_with("qkv_slot_num", io::Json(io::Json::Array{io::Json(24), io::Json(3000000000.0)}))),
             Contains("qkv_slot_num = 3000000000 is too large (limit 2147483648)"));
  CHECK_THAT(config_error_of(golden_config_with("ffn_scale_slot_num", io::Json(2147483649.0))),
             Contains("ffn_scale_slot_num = 2147483649 is too large (limit 2147483648)"));
  // Below the range, or not an integer, the old messages stay.
  CHECK_THAT(config_error_of(golden_config_with("hidden_size", io::Json(2147483648.5))),
             Contains("hidden_size must be a positive integer"));
}

}  // namespace test_io_config
