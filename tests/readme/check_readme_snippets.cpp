// check_readme_snippets README.md SOURCE... [--update]: the README's C++ blocks are code that compiles.
//
// Every ```cpp block of the README must follow a line `<!-- snippet: NAME -->`, and its text must equal
// the regions `// [readme: NAME]` ... `// [readme: end]` of the sources (joined in order, each region
// dedented; a region line `// README: X` stands for the README line X, which is not compiled on
// purpose, and a line ending in `// [readme: hide]` is compiled but not shown). Every region must be shown in the
// README. Exit status 1 with the first difference of each block otherwise. --update rewrites the README's blocks from
// the sources (then check the diff).
#include <algorithm>
#include <cstdio>
#include <fstream>
#include <map>
#include <stdexcept>
#include <string>
#include <vector>

namespace {

using Lines = std::vector<std::string>;

Lines read_lines(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error("cannot read " + path);
  Lines lines;
  std::string line;
  while (std::getline(in, line)) lines.push_back(line);
  return lines;
}

std::string trim(const std::string& s) {
  const auto begin = s.find_first_not_of(" \t");
  if (begin == std::string::npos) return "";
  return s.substr(begin, s.find_last_not_of(" \t") - begin + 1);
}

bool starts_with(const std::string& s, const std::string& prefix) { return s.compare(0, prefix.size(), prefix) == 0; }

// The regions of every source, by name.
std::map<std::string, Lines> read_regions(const std::vector<std::string>& sources) {
  std::map<std::string, Lines> regions;
  for (const auto& path : sources) {
    const Lines lines = read_lines(path);
    std::string name;
    Lines chunk;
    for (std::size_t i = 0; i < lines.size(); ++i) {
      const std::string t = trim(lines[i]);
      if (starts_with(t, "// [readme: ") && t.back() == ']') {
        const std::string tag = t.substr(12, t.size() - 13);
        if (tag == "end") {
          if (name.empty()) throw std::runtime_error(path + ":" + std::to_string(i + 1) + ": end without a region");
          std::size_t indent = std::string::npos;
          for (const auto& l : chunk)
            if (!trim(l).empty()) indent = std::min(indent, l.find_first_not_of(" \t"));
          Lines& region = regions[name];
          for (const auto& l : chunk) {
            if (l.size() >= 17 && l.compare(l.size() - 17, 17, "// [readme: hide]") == 0) continue;
            std::string out = trim(l).empty() ? "" : l.substr(indent == std::string::npos ? 0 : indent);
            const auto shown = out.find("// README: ");
            if (shown != std::string::npos && trim(out.substr(0, shown)).empty())
              out = out.substr(0, shown) + out.substr(shown + 11);
            region.push_back(out);
          }
          name.clear();
          chunk.clear();
        } else {
          if (!name.empty()) throw std::runtime_error(path + ":" + std::to_string(i + 1) + ": nested region");
          name = tag;
        }
      } else if (!name.empty()) {
        chunk.push_back(lines[i]);
      }
    }
    if (!name.empty()) throw std::runtime_error(path + ": region " + name + " has no end");
  }
  return regions;
}

}  // namespace

int main(int argc, char** argv) try {
  if (argc < 3) {
    std::fprintf(stderr, "usage: check_readme_snippets README.md SOURCE... [--update]\n");
    return 2;
  }
  const std::string readme = argv[1];
  std::vector<std::string> sources;
  bool update = false;
  for (int i = 2; i < argc; ++i) {
    if (std::string(argv[i]) == "--update")
      update = true;
    else
      sources.push_back(argv[i]);
  }
  const auto regions = read_regions(sources);
  const Lines lines = read_lines(readme);
  Lines rewritten;
  std::map<std::string, bool> shown;
  int problems = 0;
  std::string pending;  // the snippet name of the marker just seen
  for (std::size_t i = 0; i < lines.size(); ++i) {
    const std::string t = trim(lines[i]);
    rewritten.push_back(lines[i]);
    if (starts_with(t, "<!-- snippet: ") && t.size() > 18 && t.compare(t.size() - 4, 4, " -->") == 0) {
      pending = t.substr(14, t.size() - 18);
      continue;
    }
    if (!starts_with(t, "```cpp")) {
      if (!t.empty()) pending.clear();
      continue;
    }
    std::size_t end = i + 1;
    while (end < lines.size() && trim(lines[end]) != "```") ++end;
    if (end == lines.size()) throw std::runtime_error(readme + ":" + std::to_string(i + 1) + ": unterminated block");
    const Lines block(lines.begin() + static_cast<long>(i) + 1, lines.begin() + static_cast<long>(end));
    if (pending.empty()) {
      std::fprintf(stderr, "%s:%zu: a C++ block without a `<!-- snippet: NAME -->` line before it (unchecked)\n",
                   readme.c_str(), i + 1);
      ++problems;
    } else if (!regions.count(pending)) {
      std::fprintf(stderr, "%s:%zu: no source has the region `// [readme: %s]`\n", readme.c_str(), i + 1,
                   pending.c_str());
      ++problems;
    } else {
      const Lines& region = regions.at(pending);
      shown[pending] = true;
      if (update) {
        rewritten.insert(rewritten.end(), region.begin(), region.end());
        rewritten.push_back(lines[end]);
        i = end;
        pending.clear();
        continue;
      }
      if (block != region) {
        std::size_t k = 0;
        while (k < block.size() && k < region.size() && block[k] == region[k]) ++k;
        std::fprintf(
            stderr, "%s:%zu: snippet `%s` differs from its source at its line %zu:\n  README: %s\n  source: %s\n",
            readme.c_str(), i + 2 + k, pending.c_str(), k + 1, k < block.size() ? block[k].c_str() : "(block ends)",
            k < region.size() ? region[k].c_str() : "(region ends)");
        ++problems;
      }
    }
    pending.clear();
  }
  for (const auto& [name, region] : regions)
    if (!shown.count(name)) {
      std::fprintf(stderr, "region `%s` is not shown in %s\n", name.c_str(), readme.c_str());
      ++problems;
    }
  if (update) {
    std::ofstream out(readme, std::ios::binary);
    for (const auto& l : rewritten) out << l << '\n';
    std::printf("rewrote the snippets of %s\n", readme.c_str());
    return problems == 0 ? 0 : 1;
  }
  if (problems == 0) std::printf("%zu README snippets equal their compiled sources\n", shown.size());
  return problems == 0 ? 0 : 1;
} catch (const std::exception& e) {
  std::fprintf(stderr, "check_readme_snippets: %s\n", e.what());
  return 2;
}
