// tokenformer-cli: command-line front end of the library.
//
//   tokenformer-cli logits --config CONFIG.json --weights MODEL.safetensors --tokens 5,17,3 --out LOGITS.f32
//       Writes the [T, V] float32 logits of one sequence, row-major, raw little-endian.
//   tokenformer-cli grad --config CONFIG.json --weights MODEL.safetensors --tokens 5,17,3 --out GRADS.safetensors
//       Writes the gradient of the mean next-token cross-entropy of the sequence (predict token t+1
//       from tokens <= t) with respect to every parameter, float32, under the official names.
//   tokenformer-cli grow --weights IN.safetensors --config IN.json --out OUT.safetensors [--out-config OUT.json]
//                        [--qkv +N] [--proj +N] [--ffn +N] [--init zero_keys|zero|random|random_keys]
//                        [--value-std S] [--pin-scale] [--seed S] [--layers I,J,...]
//       Appends N parameter tokens to every Q/K/V, output-projection and FFN Pattention (of the
//       layers listed, counted from 0; default all) and writes the grown weights and config (default
//       OUT with .json; layers that differ get per-layer token lists). With --pin-scale and --init zero_keys
//       (the default: zero keys, values N(0, S), S by default the official 2/(L·√C)) or zero, the
//       grown model computes what the input model did (GeLU normalizations); zero_keys tokens train.
//   tokenformer-cli train --checkpoint-dir DIR [--corpus FILE[,FILE...]] [--preset tiny|small | --config C.json]
//                         [--steps N] [--batch B] [--seq T] [--lr LR] [--warmup N] [--eval-every N]
//                         [--seed S] [--resume CHECKPOINT] [--precision fp32|bf16]
//       Trains a byte-level model (default corpus: Debian's fortunes) and writes DIR/config.json,
//       DIR/checkpoint.safetensors (weights + optimizer state), DIR/curve.csv and DIR/curve.svg.
//       --config trains a model of any architecture (vocab_size >= 257 for bytes + end-of-text).
//       Data parallel: `mpirun -np N tokenformer-cli train ...` (built with tokenformer::mpi) trains
//       on N processes with the same global --batch (a multiple of N); rank 0 prints and writes.
//   tokenformer-cli transfer --from-config A.json --from-weights A.safetensors --to-config B.json
//                            --out B.safetensors [--out-config B.json] [--skip embeddings,norms,qkv,proj,ffn]
//                            [--layer-map S0,S1,...] [--new-tokens INIT] [--pin-scale] [--seed S]
//       Initializes a model of B's config (seed S), writes into it every component it shares with the
//       model A (model/transfer.hpp: by role and layer; -1 in the layer map for none), prints the
//       report on stdout and writes the weights and config.
//   tokenformer-cli init --config CONFIG.json --out MODEL.safetensors [--seed S]
//       Writes a randomly initialized model (official initialization) of the config's architecture.
//   tokenformer-cli generate (--model DIR | --config C.json --weights W) (--prompt TEXT [--tokenizer T.json] |
//                            --tokens IDS) --max-new-tokens N [--temperature X] [--top-k K] [--top-p P]
//                            [--seed S] [--ids] [--int8]
//       Continues the prompt with the KV cache and streams the text to stdout (with --ids: the new ids,
//       comma-separated); prefill and decode tokens/s go to stderr. The tokenizer is --tokenizer, else
//       DIR/tokenizer.json, else bytes (the models `train` makes). Stops at end-of-text.
//   tokenformer-cli tokenize --tokenizer T.json (--text TEXT | --text-file F)
//   tokenformer-cli detokenize --tokenizer T.json --tokens 1,2,3
//       GPT-NeoX BPE (tokenizer.json): ids comma-separated on one line, or the text.
//   tokenformer-cli convert (--weights IN | --model DIR) --out OUT.safetensors
//       Writes every tensor of a pytorch_model.bin (or safetensors) file as F32 safetensors.
//   tokenformer-cli export-c (--model DIR | --config C.json --weights W) --out MODEL_DATA.hpp [--int8]
//                            [--context N] [--name NAME]
//       Writes a header for firmware (embedded/export.hpp): NAME::config (static sizes, max_context N)
//       and NAME::weights, constexpr arrays for tokenformer::embedded::StaticModel (float, or int8 with
//       a float scale per 32 values).
//
// Wherever a command takes --config and --weights, --model DIR (a hub directory: config.json and
// model.safetensors or pytorch_model.bin) may replace them, and the weights may be a .bin file.
// Every command reads configs of every architecture ("architecture": "fit" selects the FIT body).
// Weights are checked wherever they are loaded (logits, grad, generate, grow, transfer, convert, train
// --resume): shapes against the config before allocating, and every value finite (a NaN or Inf is an
// error naming the tensor and element).
// Every error prints one line to stderr and exits with status 1 (2 for usage errors).
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iostream>
#include <limits>
#include <map>
#include <optional>
#include <set>
#include <sstream>
#include <string>
#include <type_traits>
#include <vector>

#include "tokenformer/embedded/export.hpp"
#include "tokenformer/tokenformer.hpp"
#if TOKENFORMER_HAVE_TOKENIZER
#include "tokenformer/tokenizer/bpe_tokenizer.hpp"
#endif
#if TOKENFORMER_HAVE_MPI
#include "tokenformer/distributed/mpi.hpp"
#endif

namespace {

using namespace tokenformer;
using io::Json;

struct UsageError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

const char* usage_text =
    "usage: tokenformer-cli <command> [options]\n"
    "\n"
    "commands:\n"
    "  logits --config CONFIG.json --weights MODEL.safetensors --tokens ID,ID,... --out LOGITS.f32\n"
    "      write the [T, V] float32 logits of one sequence (row-major, raw little-endian)\n"
    "  grad --config CONFIG.json --weights MODEL.safetensors --tokens ID,ID,... --out GRADS.safetensors\n"
    "      write d(mean next-token cross-entropy)/d(parameter) for every parameter, official names\n"
    "  grow --weights IN.safetensors --config IN.json --out OUT.safetensors [--out-config OUT.json]\n"
    "       [--qkv +N] [--proj +N] [--ffn +N] [--init zero_keys|zero|random|random_keys] [--value-std S]\n"
    "       [--pin-scale] [--seed S] [--layers I,J,...]\n"
    "      append parameter tokens to every Pattention; write the grown weights and config\n"
    "  train --checkpoint-dir DIR [--corpus FILE[,FILE...]] [--preset tiny|small | --config C.json] [--steps N]\n"
    "        [--batch B] [--seq T] [--lr LR] [--warmup N] [--eval-every N] [--seed S] [--resume CHECKPOINT]\n"
    "        [--precision fp32|bf16]\n"
    "      train a byte-level model (default corpus: /usr/share/games/fortunes); under mpirun -np N\n"
    "      (tokenformer-cli built with MPI) N ranks train it together, --batch is the global batch\n"
    "  transfer --from-config A.json --from-weights A.safetensors --to-config B.json --out B.safetensors\n"
    "           [--out-config B_OUT.json] [--skip embeddings,norms,qkv,proj,ffn] [--layer-map S0,S1,...]\n"
    "           [--new-tokens zero_keys|zero|random|random_keys] [--pin-scale] [--seed S]\n"
    "      warm-start a model of config B from a trained model of another architecture (XATL); prints\n"
    "      what happened to every tensor (copied, prefix-copied, truncated, converted, initialized, skipped)\n"
    "  init --config CONFIG.json --out MODEL.safetensors [--seed S]\n"
    "      write a randomly initialized model of the config (any architecture)\n"
    "  generate (--model DIR | --config C.json --weights W) (--prompt TEXT [--tokenizer T.json] | --tokens IDS)\n"
    "           --max-new-tokens N [--temperature X] [--top-k K] [--top-p P] [--seed S] [--ids] [--int8]\n"
    "      continue the prompt (KV cache), streaming text (or, with --ids, the new ids); tokens/s on stderr;\n"
    "      --int8 decodes with int8 copies of the weights (a float scale per 32 values)\n"
    "  tokenize --tokenizer T.json (--text TEXT | --text-file F)\n"
    "      print the GPT-NeoX BPE ids of the text, comma-separated\n"
    "  detokenize --tokenizer T.json --tokens ID,ID,...\n"
    "      print the text of the ids\n"
    "  convert (--weights IN.bin | --model DIR) --out OUT.safetensors\n"
    "      write every tensor of a pytorch_model.bin (or safetensors) file as F32 safetensors\n"
    "  export-c (--model DIR | --config C.json --weights W) --out MODEL_DATA.hpp [--int8] [--context N]\n"
    "           [--name NAME]\n"
    "      write a C++ header for firmware: the static config struct NAME::config (max_context N, default\n"
    "      256) and the weights as constexpr arrays (float, or int8 with a scale per 32 values) for\n"
    "      tokenformer::embedded::StaticModel (include/tokenformer/embedded/static_model.hpp)\n"
    "\n"
    "configs with \"architecture\": \"fit\" select the FIT body in every command, \"transformer\" the plain\n"
    "Transformer baseline (Linear layers; grow has nothing to grow there). --model DIR (config.json and\n"
    "model.safetensors or pytorch_model.bin, as downloaded from the hub) replaces --config and --weights,\n"
    "and weights may be pytorch_model.bin files\n";

using TokenFormerModel = LanguageModel<presets::Dynamic<float>>;
using FitModel = LanguageModel<presets::Dynamic<float>, cpu, FitBody>;
using TransformerModel = LanguageModel<presets::Dynamic<float>, cpu, TransformerLayer>;

/// Calls f(model) with a float model of `config`'s architecture (zero-initialized).
template <class F>
int with_model(const ModelConfig& config, F&& f) {
  if (config.architecture == Architecture::fit) {
    FitModel model(config);
    return f(model);
  }
  if (config.architecture == Architecture::transformer) {
    TransformerModel model(config);
    return f(model);
  }
  TokenFormerModel model(config);
  return f(model);
}

/// How every command loads weights: shapes checked against the config before allocating (always),
/// and every value checked to be finite (the first NaN or Inf is named).
io::LoadOptions load_options() {
  io::LoadOptions options;
  options.check_finite = true;
  return options;
}

/// Calls f(model) with the model of a config file and its weights, of the config's architecture.
template <class F>
int with_loaded_model(const std::string& config_path, const std::string& weights_path, F&& f) {
  const Architecture architecture = io::read_architecture(config_path);
  if (architecture == Architecture::fit) {
    auto model = io::load_model<presets::Dynamic<float>, cpu, FitBody>(config_path, weights_path, load_options());
    return f(model);
  }
  if (architecture == Architecture::transformer) {
    auto model =
        io::load_model<presets::Dynamic<float>, cpu, TransformerLayer>(config_path, weights_path, load_options());
    return f(model);
  }
  auto model = io::load_model(config_path, weights_path, load_options());
  return f(model);
}

/// The config and weights paths of a command's options: --model DIR, or --config and --weights.
std::pair<std::string, std::string> model_paths(const std::map<std::string, std::string>& options) {
  if (options.count("model")) {
    if (options.count("config") || options.count("weights"))
      throw UsageError("give --model DIR or --config and --weights, not both");
    return io::model_directory_files(options.at("model"));
  }
  if (!options.count("config") || !options.count("weights"))
    throw UsageError("give --model DIR, or --config and --weights");
  return {options.at("config"), options.at("weights")};
}

/// Parses "--key value" pairs; every key must be in `allowed`, every key in `required` present.
std::map<std::string, std::string> parse_options(int argc, char** argv, const std::set<std::string>& allowed,
                                                 const std::set<std::string>& required) {
  std::map<std::string, std::string> options;
  for (int i = 2; i < argc; i += 2) {
    const std::string key = argv[i];
    if (key.rfind("--", 0) != 0 || !allowed.count(key.substr(2))) throw UsageError("unknown option " + key);
    if (i + 1 >= argc) throw UsageError("option " + key + " needs a value");
    options[key.substr(2)] = argv[i + 1];
  }
  for (const auto& key : required)
    if (!options.count(key)) throw UsageError("missing option --" + key);
  return options;
}

/// "5,17,3" -> {5, 17, 3}; throws on anything that is not a comma-separated list of integers.
std::vector<std::int32_t> parse_token_list(const std::string& text) {
  std::vector<std::int32_t> ids;
  std::size_t pos = 0;
  while (pos <= text.size()) {
    const std::size_t comma = std::min(text.find(',', pos), text.size());
    const std::string item = text.substr(pos, comma - pos);
    std::size_t used = 0;
    long long value = 0;
    try {
      value = std::stoll(item, &used);
    } catch (const std::exception&) {
      used = 0;
    }
    if (item.empty() || used != item.size() || value < 0 || value > INT32_MAX)
      throw UsageError("--tokens must be comma-separated non-negative integers, got '" + item + "'");
    ids.push_back(static_cast<std::int32_t>(value));
    pos = comma + 1;
  }
  return ids;
}

int command_logits(int argc, char** argv) {
  const auto options = parse_options(argc, argv, {"config", "weights", "model", "tokens", "out"}, {"tokens", "out"});
  const auto tokens = parse_token_list(options.at("tokens"));
  const auto [config_path, weights_path] = model_paths(options);
  return with_loaded_model(config_path, weights_path, [&](auto& model) {
    const auto T = static_cast<index_t>(tokens.size());
    const auto logits = model.forward(tokens, 1, T);
    io::write_file_atomically(options.at("out"), [&](io::FileSink& sink) {
      sink.write(logits.data(), static_cast<std::size_t>(logits.size()) * sizeof(float));
    });
    std::cerr << "wrote " << T << " x " << model.vocab_size() << " logits to " << options.at("out") << "\n";
    return 0;
  });
}

int command_grad(int argc, char** argv) {
  const auto options = parse_options(argc, argv, {"config", "weights", "model", "tokens", "out"}, {"tokens", "out"});
  const auto tokens = parse_token_list(options.at("tokens"));
  if (tokens.size() < 2) throw UsageError("--tokens needs at least two ids (one prediction)");
  std::vector<std::int32_t> targets(tokens.begin() + 1, tokens.end());
  targets.push_back(-1);  // the last position has nothing to predict
  const auto [config_path, weights_path] = model_paths(options);
  return with_loaded_model(config_path, weights_path, [&](auto& model) {
    const auto T = static_cast<index_t>(tokens.size());
    model.enable_training();
    model.zero_grad();
    const double loss = model.forward_backward(tokens, targets, 1, T);
    io::SafetensorsWriter writer;
    writer.set_metadata("format", "pt");
    writer.set_metadata("loss", Json::number_text(loss));
    model.for_each_parameter([&](const std::string& name, Parameter<float>& p) { writer.add(name, p.grad); });
    writer.write(options.at("out"));
    std::cerr << "loss " << loss << "; wrote gradients of " << model.parameter_count() << " parameters to "
              << options.at("out") << "\n";
    return 0;
  });
}

std::vector<std::string> split_commas(const std::string& text) {
  std::vector<std::string> parts;
  std::size_t begin = 0;
  while (begin <= text.size()) {
    const std::size_t comma = std::min(text.find(',', begin), text.size());
    if (comma > begin) parts.push_back(text.substr(begin, comma - begin));
    begin = comma + 1;
  }
  return parts;
}

/// The whole of `text` as an integer, or nothing (empty, trailing characters, out of range).
std::optional<long long> whole_integer(const std::string& text) {
  std::size_t used = 0;
  try {
    const long long value = std::stoll(text, &used);
    if (!text.empty() && used == text.size()) return value;
  } catch (const std::exception&) {
  }
  return std::nullopt;
}

/// The whole of `text` as a number, or nothing.
std::optional<double> whole_number(const std::string& text) {
  std::size_t used = 0;
  try {
    const double value = std::stod(text, &used);
    if (!text.empty() && used == text.size()) return value;
  } catch (const std::exception&) {
  }
  return std::nullopt;
}

long parse_positive(const std::map<std::string, std::string>& options, const std::string& key, long fallback) {
  auto it = options.find(key);
  if (it == options.end()) return fallback;
  const auto value = whole_integer(it->second);
  if (!value || *value <= 0 || *value > std::numeric_limits<long>::max())
    throw UsageError("--" + key + " must be a positive integer");
  return static_cast<long>(*value);
}

double parse_number(const std::map<std::string, std::string>& options, const std::string& key, double fallback) {
  auto it = options.find(key);
  if (it == options.end()) return fallback;
  const auto value = whole_number(it->second);
  if (!value || !(*value > 0)) throw UsageError("--" + key + " must be a positive number");
  return *value;
}

/// "+N" or "N" -> N >= 0.
index_t parse_growth(const std::map<std::string, std::string>& options, const std::string& key) {
  auto it = options.find(key);
  if (it == options.end()) return 0;
  std::string text = it->second;
  if (!text.empty() && text[0] == '+') text = text.substr(1);
  const auto value = whole_integer(text);
  if (!value || *value < 0) throw UsageError("--" + key + " must be +N with N >= 0");
  return static_cast<index_t>(*value);
}

/// OUT's path with its extension replaced by .json.
std::string json_beside(std::string path) {
  const std::size_t dot = path.find_last_of('.');
  const std::size_t slash = path.find_last_of('/');
  if (dot != std::string::npos && (slash == std::string::npos || dot > slash)) path.resize(dot);
  return path + ".json";
}

/// Removes the value-less `flag` (e.g. "--pin-scale") from the arguments after the command, for the
/// option parser, and says whether it was there.
bool take_flag(std::vector<char*>& args, const std::string& flag) {
  bool found = false;
  args.erase(std::remove_if(args.begin() + 2, args.end(), [&](char* a) { return a == flag ? (found = true) : false; }),
             args.end());
  return found;
}

int command_grow(int argc, char** argv) {
  std::vector<char*> args(argv, argv + argc);
  const bool pin = take_flag(args, "--pin-scale");
  const auto options = parse_options(
      static_cast<int>(args.size()), args.data(),
      {"weights", "config", "out", "out-config", "qkv", "proj", "ffn", "init", "value-std", "seed", "layers"},
      {"weights", "config", "out"});
  GrowthSpec spec;
  spec.qkv = parse_growth(options, "qkv");
  spec.proj = parse_growth(options, "proj");
  spec.ffn = parse_growth(options, "ffn");
  if (options.count("init")) spec.init = parse_token_init(options.at("init"));
  if (options.count("layers")) {
    std::stringstream list(options.at("layers"));
    for (std::string item; std::getline(list, item, ',');) {
      const auto layer = whole_integer(item);
      if (!layer || *layer < 0) throw UsageError("--layers must be a comma-separated list of layer numbers >= 0");
      spec.layers.push_back(static_cast<index_t>(*layer));
    }
    if (spec.layers.empty()) throw UsageError("--layers must name at least one layer");
  }
  if (options.count("value-std")) {
    const auto value = whole_number(options.at("value-std"));
    if (!value || !std::isfinite(*value) || *value < 0) throw UsageError("--value-std must be a finite number >= 0");
    spec.value_std = *value;
  }
  spec.pin_scale = pin;
  spec.seed = static_cast<std::uint64_t>(parse_growth(options, "seed"));
  if (spec.qkv + spec.proj + spec.ffn == 0) throw UsageError("nothing to grow: give --qkv, --proj or --ffn");
  const std::string out = options.at("out");
  const std::string out_config = options.count("out-config") ? options.at("out-config") : json_beside(out);
  if (out_config == out) throw UsageError("--out-config must differ from --out");
  return with_loaded_model(options.at("config"), options.at("weights"), [&](auto& model) {
    const index_t before = model.parameter_count();
    grow(model, spec);
    io::save_weights(model, out);
    io::write_config(model.config(), out_config);
    std::cerr << "grew " << before << " -> " << model.parameter_count() << " parameters (layer 0: qkv "
              << model.config().qkv_tokens << ", proj " << model.config().proj_tokens << ", ffn "
              << model.config().ffn_tokens << " tokens" << (model.config().per_layer.empty() ? "" : "; layers differ")
              << (pin ? ", scale pinned" : "") << "); wrote " << out << " and " << out_config << "\n";
    return 0;
  });
}

int command_transfer(int argc, char** argv) {
  std::vector<char*> args(argv, argv + argc);
  const bool pin = take_flag(args, "--pin-scale");
  const auto options = parse_options(
      static_cast<int>(args.size()), args.data(),
      {"from-config", "from-weights", "to-config", "out", "out-config", "skip", "seed", "layer-map", "new-tokens"},
      {"from-config", "from-weights", "to-config", "out"});
  TransferSpec spec;
  if (options.count("skip")) spec.skip(options.at("skip"));
  if (options.count("new-tokens")) spec.new_tokens = parse_token_init(options.at("new-tokens"));
  spec.pin_scale = pin;
  const std::uint64_t seed = static_cast<std::uint64_t>(parse_growth(options, "seed"));
  spec.seed = seed + 1;  // the new tokens' draws differ from the initialization's
  if (options.count("layer-map")) {
    std::stringstream list(options.at("layer-map"));
    for (std::string item; std::getline(list, item, ',');) {
      const auto layer = whole_integer(item);
      if (!layer || *layer < -1) throw UsageError("--layer-map must list one source layer (or -1) per target layer");
      spec.layer_map.push_back(static_cast<index_t>(*layer));
    }
    if (spec.layer_map.empty()) throw UsageError("--layer-map must list one source layer (or -1) per target layer");
  }
  const std::string out = options.at("out");
  const std::string out_config = options.count("out-config") ? options.at("out-config") : json_beside(out);
  if (out_config == out) throw UsageError("--out-config must differ from --out");
  return with_loaded_model(options.at("from-config"), options.at("from-weights"), [&](auto& source) {
    return with_model(io::read_config(options.at("to-config")), [&](auto& target) {
      Rng rng(seed);
      target.initialize(rng);
      const TransferReport report = transfer(source, target, spec);
      std::cout << report.str();
      io::save_weights(target, out);
      io::write_config(target.config(), out_config);
      std::cerr << "transferred " << to_string(source.config().architecture) << " -> "
                << to_string(target.config().architecture) << "; wrote " << out << " and " << out_config << "\n";
      return 0;
    });
  });
}

int command_init(int argc, char** argv) {
  const auto options = parse_options(argc, argv, {"config", "out", "seed"}, {"config", "out"});
  const std::uint64_t seed = static_cast<std::uint64_t>(parse_growth(options, "seed"));
  return with_model(io::read_config(options.at("config")), [&](auto& model) {
    Rng rng(seed);
    model.initialize(rng);
    io::save_weights(model, options.at("out"));
    std::cerr << "wrote " << model.parameter_count() << " parameters (" << to_string(model.config().architecture)
              << ", seed " << seed << ") to " << options.at("out") << "\n";
    return 0;
  });
}

int command_export_c(int argc, char** argv) {
  std::vector<char*> args(argv, argv + argc);
  const bool int8 = take_flag(args, "--int8");
  const auto options = parse_options(static_cast<int>(args.size()), args.data(),
                                     {"model", "config", "weights", "out", "context", "name"}, {"out"});
  embedded::CHeaderOptions header;
  header.int8 = int8;
  if (options.count("context")) header.max_context = parse_positive(options, "context", 1);
  if (options.count("name")) header.name = options.at("name");
  const auto [config_path, weights_path] = model_paths(options);
  header.source = weights_path;
  return with_loaded_model(config_path, weights_path, [&](auto& model) {
    const std::string text = embedded::c_header(model, header);
    io::write_file_atomically(options.at("out"), [&](io::FileSink& sink) { sink.write(text.data(), text.size()); });
    std::cerr << "wrote " << options.at("out") << ": " << model.parameter_count() << " parameters as "
              << (int8 ? "int8" : "float") << ", max_context " << header.max_context << ", namespace " << header.name
              << "\n";
    return 0;
  });
}

#if TOKENFORMER_HAVE_TOKENIZER
BpeTokenizer load_tokenizer(const std::string& path) { return BpeTokenizer::from_file(path); }
#else
[[noreturn]] void no_tokenizer() {
  throw std::runtime_error(
      "this tokenformer-cli was built without the BPE tokenizer (install libutf8proc-dev and reconfigure)");
}
#endif

std::string read_whole_file(const std::string& path) { return io::read_text_file(path, std::size_t{1} << 30); }

int command_tokenize(int argc, char** argv) {
  const auto options = parse_options(argc, argv, {"tokenizer", "text", "text-file"}, {"tokenizer"});
  if (options.count("text") == options.count("text-file")) throw UsageError("give --text or --text-file");
  const std::string text = options.count("text") ? options.at("text") : read_whole_file(options.at("text-file"));
#if TOKENFORMER_HAVE_TOKENIZER
  const auto ids = load_tokenizer(options.at("tokenizer")).encode(text);
  std::string line;
  for (std::size_t i = 0; i < ids.size(); ++i) line += (i ? "," : "") + std::to_string(ids[i]);
  std::cout << line << "\n";
  return 0;
#else
  no_tokenizer();
#endif
}

int command_detokenize(int argc, char** argv) {
  const auto options = parse_options(argc, argv, {"tokenizer", "tokens"}, {"tokenizer", "tokens"});
  const auto ids = parse_token_list(options.at("tokens"));
#if TOKENFORMER_HAVE_TOKENIZER
  std::cout << load_tokenizer(options.at("tokenizer")).decode_bytes(ids) << "\n";
  return 0;
#else
  (void)ids;
  no_tokenizer();
#endif
}

int command_convert(int argc, char** argv) {
  const auto options = parse_options(argc, argv, {"weights", "model", "out"}, {"out"});
  if (options.count("weights") == options.count("model")) throw UsageError("give --weights FILE or --model DIR");
  const std::string in =
      options.count("weights") ? options.at("weights") : io::model_directory_files(options.at("model")).second;
  if (in == options.at("out")) throw UsageError("--out must differ from the input");
  io::convert_to_safetensors(in, options.at("out"), load_options().check_finite);
  std::cerr << "wrote " << options.at("out") << " (F32 safetensors) from " << in << "\n";
  return 0;
}

int command_generate(int argc, char** argv) {
  std::vector<char*> args(argv, argv + argc);
  const bool print_ids = take_flag(args, "--ids");
  const bool int8 = take_flag(args, "--int8");
  const auto options = parse_options(static_cast<int>(args.size()), args.data(),
                                     {"model", "config", "weights", "prompt", "tokenizer", "tokens", "max-new-tokens",
                                      "temperature", "top-k", "top-p", "seed"},
                                     {"max-new-tokens"});
  if (options.count("prompt") == options.count("tokens")) throw UsageError("give --prompt TEXT or --tokens IDS");
  const auto [config_path, weights_path] = model_paths(options);
  SamplingOptions sampling;
  sampling.temperature = 0.8;
  if (int8) sampling.weights = WeightFormat::int8;
  if (options.count("temperature")) {
    const auto value = whole_number(options.at("temperature"));
    if (!value || !std::isfinite(*value) || *value < 0) throw UsageError("--temperature must be a number >= 0");
    sampling.temperature = *value;
  }
  if (options.count("top-k")) sampling.top_k = parse_positive(options, "top-k", 0);
  if (options.count("top-p")) {
    const auto value = whole_number(options.at("top-p"));
    if (!value || !(*value > 0 && *value <= 1)) throw UsageError("--top-p must be in (0, 1]");
    sampling.top_p = *value;
  }
  const long count = parse_positive(options, "max-new-tokens", 1);
  const std::uint64_t seed = static_cast<std::uint64_t>(parse_growth(options, "seed"));

  // The tokenizer: --tokenizer, else the model directory's tokenizer.json, else bytes.
  std::string tokenizer_path = options.count("tokenizer") ? options.at("tokenizer") : "";
  if (tokenizer_path.empty() && options.count("model") &&
      std::filesystem::exists(options.at("model") + "/tokenizer.json"))
    tokenizer_path = options.at("model") + "/tokenizer.json";
  std::vector<std::int32_t> prompt;
  std::function<std::string(std::int32_t)> piece;  // the bytes of one generated id
#if TOKENFORMER_HAVE_TOKENIZER
  std::optional<BpeTokenizer> bpe;
  if (!tokenizer_path.empty()) bpe = load_tokenizer(tokenizer_path);
  if (bpe) {
    sampling.stop_token = bpe->eos_id();
    piece = [&](std::int32_t id) { return bpe->decode_bytes({id}); };
    if (options.count("prompt")) prompt = bpe->encode(options.at("prompt"));
  }
#else
  if (!tokenizer_path.empty()) no_tokenizer();
#endif
  if (!piece) {  // bytes, and 256 ends the text (the models `train` makes)
    sampling.stop_token = ByteTokenizer::end_of_text;
    piece = [](std::int32_t id) { return id < 256 ? std::string(1, static_cast<char>(id)) : std::string(); };
    if (options.count("prompt")) prompt = ByteTokenizer::encode(options.at("prompt"));
  }
  if (options.count("tokens")) prompt = parse_token_list(options.at("tokens"));
  if (prompt.empty()) throw UsageError("the prompt is empty");

  return with_loaded_model(config_path, weights_path, [&](auto& model) {
    for (const std::int32_t id : prompt)
      if (id >= model.vocab_size())
        throw std::runtime_error("prompt id " + std::to_string(id) + " is outside the model's vocabulary of " +
                                 std::to_string(model.vocab_size()));
    if (sampling.stop_token >= model.vocab_size()) sampling.stop_token = -1;
    Rng rng(seed);
    using Clock = std::chrono::steady_clock;
    const auto start = Clock::now();
    Clock::time_point first{};
    long produced = 0;
    const auto produced_ids = generate(model, prompt, count, rng, sampling, [&](index_t, std::int32_t token) {
      if (produced++ == 0) first = Clock::now();
      if (print_ids) {
        std::cout << (produced > 1 ? "," : "") << token << std::flush;
      } else if (token != sampling.stop_token) {
        std::cout << piece(token) << std::flush;
      }
    });
    std::cout << "\n";
    const auto end = Clock::now();
    const double prefill = std::chrono::duration<double>(first - start).count();
    const double decode = std::chrono::duration<double>(end - first).count();
    std::cerr << "prefill: " << prompt.size() << " tokens in " << prefill << " s ("
              << static_cast<double>(prompt.size()) / prefill << " tokens/s); decode: " << produced_ids.size() - 1
              << " tokens in " << decode << " s ("
              << (produced_ids.size() > 1 ? static_cast<double>(produced_ids.size() - 1) / decode : 0.0)
              << " tokens/s)\n";
    return 0;
  });
}

int command_train(int argc, char** argv) {
  const auto options = parse_options(argc, argv,
                                     {"checkpoint-dir", "corpus", "preset", "config", "steps", "batch", "seq", "lr",
                                      "warmup", "eval-every", "seed", "resume", "precision"},
                                     {"checkpoint-dir"});
  if (options.count("preset") && options.count("config")) throw UsageError("give --preset or --config, not both");
  const std::string preset = options.count("config")   ? options.at("config")
                             : options.count("preset") ? options.at("preset")
                                                       : "small";
  ModelConfig config;
  if (options.count("config")) {
    config = io::read_config(options.at("config"));
    if (config.vocab_size < 257)
      throw UsageError("--config: a byte-level model needs vocab_size >= 257 (256 bytes and end-of-text), got " +
                       std::to_string(config.vocab_size));
    if (config.architecture == Architecture::fit && !config.fit.causal)
      throw UsageError("--config: train trains next-token models; this FIT config is an encoder (causal false)");
  } else if (preset == "tiny") {
    config = ModelConfig::from<presets::Tiny>();
  } else if (preset == "small") {
    config = ModelConfig::from<presets::Small>();
  } else {
    throw UsageError("--preset must be tiny or small, got '" + preset + "'");
  }
  const auto files = options.count("corpus") ? split_commas(options.at("corpus")) : TextCorpus::default_files();
  TextCorpus corpus(files, 0.1);

  TrainerOptions train;
  train.steps = parse_positive(options, "steps", 600);
  train.batch_size = parse_positive(options, "batch", 16);
  train.sequence_length = parse_positive(options, "seq", 128);
  train.adamw.lr = parse_number(options, "lr", 2e-3);
  train.min_lr = train.adamw.lr / 10;
  train.warmup_steps = parse_positive(options, "warmup", std::max(1L, train.steps / 10));
  train.eval_every = parse_positive(options, "eval-every", 50);
  train.seed = static_cast<std::uint64_t>(parse_positive(options, "seed", 1234));
  if (options.count("precision")) {
    try {
      train.precision = parse_precision(options.at("precision"));
    } catch (const config_error& e) {
      throw UsageError(std::string("--precision: ") + e.what());
    }
  }
  if (config.architecture == Architecture::fit && train.sequence_length > config.fit.max_groups * config.fit.group_size)
    throw UsageError("--seq " + std::to_string(train.sequence_length) + " exceeds the FIT config's max_groups * " +
                     "group_size = " + std::to_string(config.fit.max_groups * config.fit.group_size));

    // Under mpirun (and built with MPI) the ranks train one model together; otherwise one process.
#if TOKENFORMER_HAVE_MPI
  DataParallelLaunch launch(&argc, &argv);
  ProcessGroup& group = launch.group();
#else
  if (launched_process_count() > 1)
    throw UsageError("started as " + std::to_string(launched_process_count()) +
                     " processes, but this tokenformer-cli was built without MPI (install libopenmpi-dev and "
                     "rebuild): each process would train alone and write the same files");
  ProcessGroup& group = SingleProcess::instance();
#endif
  try {
    return with_model(config, [&](auto& model) {
      Rng init(train.seed);
      model.initialize(init);
      Trainer<std::remove_reference_t<decltype(model)>> trainer(model, corpus, train, group);
      if (options.count("resume")) {
        trainer.resume(options.at("resume"));
        io::require_finite(model, options.at("resume"));
      }
      const std::string dir = options.at("checkpoint-dir");
      if (group.is_main()) {
        std::filesystem::create_directories(dir);
        io::write_config(model.config(), dir + "/config.json");
        std::cerr << "training " << preset << " (" << to_string(model.config().architecture) << ", "
                  << model.parameter_count() << " parameters) on " << files.size() << " files from step "
                  << trainer.step() << ", " << group.description() << "\n";
      }
      const auto summary = run_training(trainer, dir, "tokenformer-cli train", dir + "/summary.json");
      if (group.is_main())
        std::cerr << "final validation loss " << summary.final_validation_loss << " after " << summary.steps
                  << " steps; wrote " << dir << "/checkpoint.safetensors\n";
      return 0;
    });
  } catch (const std::exception& e) {
    if (group.size() == 1) throw;
    // The other ranks may wait in a collective: stop them all.
    std::cerr << "tokenformer-cli (rank " << group.rank() << "): " << e.what() << "\n";
#if TOKENFORMER_HAVE_MPI
    MpiSession::abort(1);
#endif
    throw;
  }
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2 || std::string(argv[1]) == "--help" || std::string(argv[1]) == "-h") {
    std::cout << usage_text;
    return argc < 2 ? 2 : 0;
  }
  const std::string command = argv[1];
  try {
    if (command == "logits") return command_logits(argc, argv);
    if (command == "grad") return command_grad(argc, argv);
    if (command == "train") return command_train(argc, argv);
    if (command == "grow") return command_grow(argc, argv);
    if (command == "transfer") return command_transfer(argc, argv);
    if (command == "init") return command_init(argc, argv);
    if (command == "generate") return command_generate(argc, argv);
    if (command == "tokenize") return command_tokenize(argc, argv);
    if (command == "detokenize") return command_detokenize(argc, argv);
    if (command == "convert") return command_convert(argc, argv);
    if (command == "export-c") return command_export_c(argc, argv);
    throw UsageError("unknown command '" + command + "'");
  } catch (const UsageError& e) {
    std::cerr << "tokenformer-cli: " << e.what() << "\n\n" << usage_text;
    return 2;
  } catch (const std::exception& e) {
    std::cerr << "tokenformer-cli: " << e.what() << "\n";
    return 1;
  }
}
