// tokenformer-cli: command-line front end of the library.
//
//   tokenformer-cli logits --config CONFIG.json --weights MODEL.safetensors --tokens 5,17,3 --out LOGITS.f32
//       Writes the [T, V] float32 logits of one sequence, row-major, raw little-endian.
//
// Every error prints one line to stderr and exits with status 1 (2 for usage errors).
#include <cstdint>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "tokenformer/tokenformer.hpp"

namespace {

using namespace tokenformer;

struct UsageError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

const char* usage_text =
    "usage: tokenformer-cli <command> [options]\n"
    "\n"
    "commands:\n"
    "  logits --config CONFIG.json --weights MODEL.safetensors --tokens ID,ID,... --out LOGITS.f32\n"
    "      write the [T, V] float32 logits of one sequence (row-major, raw little-endian)\n";

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
  const auto options =
      parse_options(argc, argv, {"config", "weights", "tokens", "out"}, {"config", "weights", "tokens", "out"});
  const auto tokens = parse_token_list(options.at("tokens"));
  auto model = io::load_model(options.at("config"), options.at("weights"));
  const auto T = static_cast<index_t>(tokens.size());
  const auto logits = model.forward(tokens, 1, T);
  io::write_file_atomically(options.at("out"), [&](io::FileSink& sink) {
    sink.write(logits.data(), static_cast<std::size_t>(logits.size()) * sizeof(float));
  });
  std::cerr << "wrote " << T << " x " << model.vocab_size() << " logits to " << options.at("out") << "\n";
  return 0;
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
    throw UsageError("unknown command '" + command + "'");
  } catch (const UsageError& e) {
    std::cerr << "tokenformer-cli: " << e.what() << "\n\n" << usage_text;
    return 2;
  } catch (const std::exception& e) {
    std::cerr << "tokenformer-cli: " << e.what() << "\n";
    return 1;
  }
}
