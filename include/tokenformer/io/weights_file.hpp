// tokenformer/io/weights_file.hpp: open a weights file of either format by its content, and convert
// one to safetensors.
//
// WeightsFile has the interface of SafetensorsReader and TorchCheckpointReader (path, tensors,
// contains, info, read) and picks the format from the first bytes: a zip archive ("PK\x03\x04", or
// "PK\x05\x06" for an empty one) is a torch.save checkpoint (pytorch_model.bin), anything else is read
// as safetensors. A legacy torch.save file (a bare pickle, before PyTorch 1.6) is refused with a
// message saying so. Both readers validate the whole file when it is opened (see their headers), so
// every error is a file_error naming the file.
// convert_to_safetensors writes every tensor of a file of either format to a safetensors file as F32
// (F64 stays F64), one tensor in memory at a time, atomically (io/atomic_file.hpp); with
// check_finite it refuses a tensor holding NaN or Inf, naming it and the element.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "tokenformer/core/error.hpp"
#include "tokenformer/core/tensor.hpp"
#include "tokenformer/io/atomic_file.hpp"
#include "tokenformer/io/json.hpp"
#include "tokenformer/io/safetensors.hpp"
#include "tokenformer/io/torch_checkpoint.hpp"
#include "tokenformer/io/zip.hpp"

namespace tokenformer::io {

/// The two weights formats: safetensors, or a torch.save checkpoint (pytorch_model.bin).
enum class WeightsFormat { safetensors, torch };

/// The format's name: "safetensors" or "torch".
inline const char* to_string(WeightsFormat f) { return f == WeightsFormat::torch ? "torch" : "safetensors"; }

/// A weights file of either format, opened and validated.
class WeightsFile {
 public:
  /// Opens `path`, a zip archive (torch checkpoint) or a safetensors file by its first bytes, and
  /// validates it; throws file_error naming the problem.
  explicit WeightsFile(const std::string& path) {
    ByteSource source = ByteSource::open_file(path);
    const std::string magic =
        source.read_string(0, static_cast<std::size_t>(std::min<std::uint64_t>(source.size(), 4)), "the first bytes");
    if (is_zip(magic))
      torch_ = std::make_unique<TorchCheckpointReader>(path);
    else
      safetensors_ = std::make_unique<SafetensorsReader>(open_safetensors(magic, path));
  }
  /// Reads a weights file held in memory; `name` stands for the path in messages.
  static WeightsFile from_memory(std::string bytes, const std::string& name = "<memory>") {
    WeightsFile w;
    const std::string magic = bytes.substr(0, 4);
    if (is_zip(magic))
      w.torch_ = std::make_unique<TorchCheckpointReader>(TorchCheckpointReader::from_memory(std::move(bytes), name));
    else
      w.safetensors_ = std::make_unique<SafetensorsReader>(
          open_safetensors(magic, name, [&] { return SafetensorsReader::from_memory(std::move(bytes), name); }));
    return w;
  }

  WeightsFormat format() const { return torch_ ? WeightsFormat::torch : WeightsFormat::safetensors; }  ///< the format
  const std::string& path() const { return torch_ ? torch_->path() : safetensors_->path(); }           ///< for messages
  /// Every tensor's entry, by name.
  const std::map<std::string, TensorInfo>& tensors() const {
    return torch_ ? torch_->tensors() : safetensors_->tensors();
  }
  /// The safetensors metadata (empty for a torch checkpoint).
  const std::map<std::string, std::string>& metadata() const {
    static const std::map<std::string, std::string> none;
    return torch_ ? none : safetensors_->metadata();
  }
  bool contains(const std::string& name) const { return tensors().count(name) != 0; }  ///< whether it has `name`
  /// The entry of `name`; throws file_error if the file has no such tensor.
  const TensorInfo& info(const std::string& name) const {
    return torch_ ? torch_->info(name) : safetensors_->info(name);
  }
  /// Reads tensor `name`, which must have shape `expected`, converting to T, into host memory `out`.
  template <class T>
  void read(const std::string& name, const Shape& expected, T* out) {
    if (torch_)
      torch_->read(name, expected, out);
    else
      safetensors_->read(name, expected, out);
  }
  /// Reads tensor `name` into a tensor of the same shape on any device.
  template <class T, class Device>
  void read(const std::string& name, Tensor<T, Device>& tensor) {
    if (torch_)
      torch_->read(name, tensor);
    else
      safetensors_->read(name, tensor);
  }

 private:
  WeightsFile() = default;

  static bool is_zip(const std::string& magic) {
    return magic == std::string("PK\x03\x04", 4) || magic == std::string("PK\x05\x06", 4);
  }
  template <class Open>
  static SafetensorsReader open_safetensors(const std::string& magic, const std::string& name, Open open) {
    // torch.save's legacy format starts with a pickled magic number: PROTO 2, LONG1 of 10 bytes.
    if (magic.size() >= 3 && static_cast<unsigned char>(magic[0]) == 0x80 && magic[1] == '\x02' &&
        static_cast<unsigned char>(magic[2]) == 0x8a)
      throw file_error(name +
                       " is a legacy torch.save file (before PyTorch 1.6), which is not read: re-save it with a "
                       "newer PyTorch (torch.save(torch.load(f), f)) or convert it to safetensors");
    return open();
  }
  static SafetensorsReader open_safetensors(const std::string& magic, const std::string& path) {
    return open_safetensors(magic, path, [&] { return SafetensorsReader(path); });
  }

  std::unique_ptr<SafetensorsReader> safetensors_;
  std::unique_ptr<TorchCheckpointReader> torch_;
};

namespace detail {
/// "tensor 'name' element i (of n) is nan" (or inf, -inf): how a finite check names the first
/// non-finite value of a tensor.
inline std::string non_finite_text(const std::string& name, index_t index, index_t count, double value) {
  const char* what = std::isnan(value) ? "nan" : value > 0 ? "inf" : "-inf";
  return "tensor '" + name + "' element " + std::to_string(index) + " (of " + std::to_string(count) + ") is " + what;
}
/// Throws numeric_error "`source`: tensor 'name' element i (of n) is nan" for the first NaN or
/// infinity of the `count` host values.
template <class T>
void require_finite_values(const T* values, std::size_t count, const std::string& name, const std::string& source) {
  for (std::size_t i = 0; i < count; ++i)
    if (!std::isfinite(values[i]))
      throw numeric_error(source + ": " +
                          non_finite_text(name, static_cast<index_t>(i), static_cast<index_t>(count), values[i]));
}
}  // namespace detail

/// Writes every tensor of `src_path` (safetensors or a torch checkpoint) to `dst_path` as safetensors:
/// F32, or F64 for F64 tensors, in name order, with the metadata of a safetensors source and
/// "format": "pt". The destination is replaced atomically, once complete; one tensor is in memory at a
/// time. Throws file_error on any malformed source or write failure, and with `check_finite`,
/// numeric_error naming the first tensor holding a NaN or an infinity (and its first such element),
/// leaving the destination as it was.
inline void convert_to_safetensors(const std::string& src_path, const std::string& dst_path,
                                   bool check_finite = false) {
  WeightsFile src(src_path);
  Json::Object header;
  std::uint64_t offset = 0;
  for (const auto& [name, info] : src.tensors()) {
    if (name == "__metadata__")
      throw file_error(src_path + ": a tensor named '__metadata__' cannot be written to safetensors");
    const DType dtype = info.dtype == DType::F64 ? DType::F64 : DType::F32;
    const std::uint64_t bytes = static_cast<std::uint64_t>(info.shape.numel()) * element_size(dtype);
    Json::Array dims;
    for (int i = 0; i < info.shape.rank(); ++i) dims.emplace_back(static_cast<long long>(info.shape[i]));
    header[name] =
        Json(Json::Object{{"dtype", Json(to_string(dtype))},
                          {"shape", Json(std::move(dims))},
                          {"data_offsets", Json(Json::Array{Json(static_cast<unsigned long long>(offset)),
                                                            Json(static_cast<unsigned long long>(offset + bytes))})}});
    offset += bytes;
  }
  Json::Object meta;
  for (const auto& [key, value] : src.metadata()) meta[key] = Json(value);
  if (meta.count("format") == 0) meta["format"] = Json("pt");
  header["__metadata__"] = Json(std::move(meta));
  std::string text = Json(std::move(header)).dump();
  while (text.size() % 8 != 0) text += ' ';

  write_file_atomically(dst_path, [&](FileSink& sink) {
    unsigned char len[8];
    for (int i = 0; i < 8; ++i) len[i] = static_cast<unsigned char>(static_cast<std::uint64_t>(text.size()) >> (8 * i));
    sink.write(len, 8);
    sink.write(text.data(), text.size());
    for (const auto& [name, info] : src.tensors()) {
      const auto count = static_cast<std::size_t>(info.shape.numel());
      if (info.dtype == DType::F64) {
        std::vector<double> values(count);
        src.read(name, info.shape, values.data());
        if (check_finite) detail::require_finite_values(values.data(), count, name, src_path);
        sink.write(values.data(), count * sizeof(double));
      } else {
        std::vector<float> values(count);
        src.read(name, info.shape, values.data());
        if (check_finite) detail::require_finite_values(values.data(), count, name, src_path);
        sink.write(values.data(), count * sizeof(float));
      }
    }
  });
}

}  // namespace tokenformer::io
