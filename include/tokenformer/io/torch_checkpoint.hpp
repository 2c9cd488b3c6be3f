// tokenformer/io/torch_checkpoint.hpp: read the PyTorch checkpoints torch.save writes
// (pytorch_model.bin), safely, with the interface of SafetensorsReader.
//
// Format (PyTorch >= 1.6): a zip archive of stored entries (io/zip.hpp) with a top folder, the file's
// stem or "archive": <prefix>/data.pkl is the pickled state dict (io/pickle.hpp), in which each tensor
// is _rebuild_tensor_v2(storage, offset, sizes, strides, ...) and each storage a persistent id naming
// the entry <prefix>/data/<key> of little-endian elements (<prefix>/byteorder, when present, must say
// "little"). Several tensors may view one storage at different offsets.
// Safety: the pickle is never executed (io/pickle.hpp lists the only globals it accepts and refuses
// every other one by name); every tensor is checked when the file is opened: F64/F32/F16/BF16, at most
// 4 dimensions, contiguous row-major strides (a dimension of size 1 may have any stride; a transposed
// or sliced view is refused, naming the tensor), and storage offset + element count within the
// storage, whose entry must hold all its elements. Sizes are checked with overflow-safe arithmetic, so
// a malformed, truncated or hostile file raises file_error naming the file and what is wrong.
// The legacy (pre-1.6, non-zip) format is not read.
#pragma once

#include <cstdint>
#include <cstring>
#include <map>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "tokenformer/core/error.hpp"
#include "tokenformer/core/tensor.hpp"
#include "tokenformer/io/pickle.hpp"
#include "tokenformer/io/safetensors.hpp"
#include "tokenformer/io/zip.hpp"

namespace tokenformer::io {

/// An open torch.save checkpoint with validated tensors. Tensor data is read on demand.
/// TensorInfo::begin and end are byte offsets in the file (the tensor's bytes inside its storage entry).
class TorchCheckpointReader {
 public:
  /// Largest data.pkl read (a state dict's pickle takes a few hundred bytes per tensor).
  static constexpr std::uint64_t max_pickle_bytes = std::uint64_t{1} << 27;

  /// Opens `path` and validates its archive, pickle and tensors; throws file_error naming the problem.
  explicit TorchCheckpointReader(const std::string& path) : source_(ByteSource::open_file(path)) { open(); }
  /// Reads a checkpoint held in memory; `name` stands for the path in messages.
  static TorchCheckpointReader from_memory(std::string bytes, const std::string& name = "<memory>") {
    return TorchCheckpointReader(ByteSource::from_memory(std::move(bytes), name));
  }

  const std::string& path() const { return source_.name(); }  ///< the path, for messages
  /// The archive's top folder with its slash ("archive/", "pytorch_model/").
  const std::string& prefix() const { return prefix_; }
  const std::map<std::string, TensorInfo>& tensors() const { return tensors_; }       ///< every tensor, by name
  bool contains(const std::string& name) const { return tensors_.count(name) != 0; }  ///< whether it has `name`

  /// The entry of `name`; throws file_error if the file has no such tensor.
  const TensorInfo& info(const std::string& name) const {
    auto it = tensors_.find(name);
    if (it == tensors_.end()) throw file_error(path() + ": missing tensor '" + name + "'");
    return it->second;
  }

  /// Reads tensor `name`, which must have shape `expected`, converting to T, into host memory `out`.
  template <class T>
  void read(const std::string& name, const Shape& expected, T* out) {
    static_assert(std::is_floating_point<T>::value, "checkpoint tensors are read as float or double");
    const TensorInfo& t = info(name);
    if (t.shape != expected)
      throw file_error(path() + ": tensor '" + name + "' has shape " + t.shape.str() + ", expected " + expected.str());
    const auto count = static_cast<std::size_t>(expected.numel());
    std::vector<unsigned char> raw(count * element_size(t.dtype));
    source_.read(t.begin, raw.data(), raw.size(), "tensor '" + name + "'");
    detail::decode_elements(t.dtype, raw.data(), count, out);
  }

  /// Reads tensor `name` into a tensor of the same shape on any device.
  template <class T, class Device>
  void read(const std::string& name, Tensor<T, Device>& tensor) {
    std::vector<T> host(static_cast<std::size_t>(tensor.size()));
    read(name, tensor.shape(), host.data());
    tensor.copy_from_host(host.data());
  }

 private:
  explicit TorchCheckpointReader(ByteSource source) : source_(std::move(source)) { open(); }

  static DType dtype_of(pickle::StorageType type) {
    switch (type) {
      case pickle::StorageType::float64: return DType::F64;
      case pickle::StorageType::float32: return DType::F32;
      case pickle::StorageType::float16: return DType::F16;
      case pickle::StorageType::bfloat16: return DType::BF16;
    }
    return DType::F32;
  }

  void open() {
    const std::string& file = path();
    const std::map<std::string, ZipEntry> entries = read_zip_directory(source_);

    // The one <prefix>/data.pkl (the prefix is a single folder).
    const ZipEntry* pickle_entry = nullptr;
    for (const auto& [name, entry] : entries) {
      const std::size_t slash = name.find('/');
      if (slash == std::string::npos || slash == 0 || name.compare(slash, std::string::npos, "/data.pkl") != 0)
        continue;
      if (pickle_entry != nullptr)
        throw file_error(file + ": the archive holds several checkpoints ('" + detail::printable(pickle_entry->name) +
                         "' and '" + detail::printable(name) + "')");
      pickle_entry = &entry;
    }
    if (pickle_entry == nullptr)
      throw file_error(file + " is a zip archive but not a torch.save checkpoint (no <prefix>/data.pkl entry)");
    prefix_ = pickle_entry->name.substr(0, pickle_entry->name.size() - 8);

    if (auto it = entries.find(prefix_ + "byteorder"); it != entries.end()) {
      const std::string order =
          it->second.size <= 16
              ? source_.read_string(it->second.offset, static_cast<std::size_t>(it->second.size), "the byteorder entry")
              : std::string("?");
      if (order != "little")
        throw file_error(file + ": byte order '" + detail::printable(order) +
                         "' is not supported (only little-endian checkpoints)");
    }

    if (pickle_entry->size > max_pickle_bytes)
      throw file_error(file + ": " + detail::printable(pickle_entry->name) + " is larger than " +
                       std::to_string(max_pickle_bytes) + " bytes");
    const std::string pickled = source_.read_string(pickle_entry->offset, static_cast<std::size_t>(pickle_entry->size),
                                                    detail::printable(pickle_entry->name));
    const pickle::StateDict state =
        pickle::read_torch_state_dict(reinterpret_cast<const unsigned char*>(pickled.data()), pickled.size(),
                                      file + ": " + detail::printable(pickle_entry->name));
    if (state.tensors.empty() && state.other_values > 0)
      throw file_error(file + ": the state dict holds no tensors, only " + std::to_string(state.other_values) +
                       " other values (a checkpoint that nests its state dict, such as {\"model\": ...}, is not "
                       "supported)");

    // Each storage's entry must hold its elements.
    std::vector<const ZipEntry*> storage_entries;
    for (const pickle::StorageRef& s : state.storages) {
      const std::string entry_name = prefix_ + "data/" + s.key;
      auto it = entries.find(entry_name);
      if (it == entries.end())
        throw file_error(file + ": storage '" + detail::printable(s.key) + "' has no entry '" +
                         detail::printable(entry_name) + "' in the archive");
      const std::uint64_t bytes = element_size(dtype_of(s.type));
      if (static_cast<std::uint64_t>(s.numel) > it->second.size / bytes)
        throw file_error(file + ": storage '" + detail::printable(s.key) + "' of " + std::to_string(s.numel) + " " +
                         to_string(dtype_of(s.type)) + " elements needs " +
                         (static_cast<std::uint64_t>(s.numel) > (std::uint64_t{1} << 60)
                              ? std::string("more")
                              : std::to_string(static_cast<std::uint64_t>(s.numel) * bytes)) +
                         " bytes but its entry holds " + std::to_string(it->second.size) + " (truncated file?)");
      storage_entries.push_back(&it->second);
    }

    for (const auto& [name, ref] : state.tensors) {
      const std::string what = file + ": tensor '" + detail::printable(name) + "'";
      const pickle::StorageRef& storage = state.storages[ref.storage];
      TensorInfo t;
      t.name = name;
      t.dtype = dtype_of(storage.type);
      if (ref.sizes.size() > static_cast<std::size_t>(Shape::max_rank))
        throw file_error(what + " has " + std::to_string(ref.sizes.size()) + " dimensions (at most " +
                         std::to_string(Shape::max_rank) + " are supported)");
      std::uint64_t numel = 1;
      for (std::int64_t n : ref.sizes) {
        if (n < 0 || n > (std::int64_t{1} << 40))
          throw file_error(what + ": dimension " + std::to_string(n) + " is invalid");
        if (n != 0 && numel > (std::uint64_t{1} << 50) / static_cast<std::uint64_t>(n))
          throw file_error(what + ": shape is too large");
        numel *= static_cast<std::uint64_t>(n);
        t.shape.push_back(static_cast<index_t>(n));
      }
      if (numel > 0) {  // contiguous row-major: each stride is the product of the later sizes
        std::int64_t expected = 1;
        for (std::size_t i = ref.sizes.size(); i-- > 0;) {
          if (ref.sizes[i] != 1 && ref.strides[i] != expected)
            throw file_error(what + " is not contiguous (shape " + t.shape.str() + ", strides " +
                             strides_text(ref.strides) +
                             "): a transposed or sliced view; save tensor.contiguous() instead");
          expected *= ref.sizes[i];
        }
      }
      const auto capacity = static_cast<std::uint64_t>(storage.numel);
      if (ref.offset < 0 || static_cast<std::uint64_t>(ref.offset) > capacity ||
          numel > capacity - static_cast<std::uint64_t>(ref.offset))
        throw file_error(what + ": " + std::to_string(numel) + " elements at offset " + std::to_string(ref.offset) +
                         " lie outside its storage '" + detail::printable(storage.key) + "' of " +
                         std::to_string(capacity) + " elements");
      const std::uint64_t bytes = element_size(t.dtype);
      t.begin = storage_entries[ref.storage]->offset + static_cast<std::uint64_t>(ref.offset) * bytes;
      t.end = t.begin + numel * bytes;
      tensors_.emplace(name, std::move(t));
    }
  }

  static std::string strides_text(const std::vector<std::int64_t>& strides) {
    std::string s = "[";
    for (std::size_t i = 0; i < strides.size(); ++i) s += (i ? ", " : "") + std::to_string(strides[i]);
    return s + "]";
  }

  ByteSource source_;
  std::string prefix_;
  std::map<std::string, TensorInfo> tensors_;
};

}  // namespace tokenformer::io
