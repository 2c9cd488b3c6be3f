// tokenformer/io/safetensors.hpp: read and write safetensors files.
//
// Format: an 8-byte little-endian header length N, N bytes of JSON mapping each tensor name to
// {"dtype", "shape", "data_offsets": [begin, end]} (offsets into the data that follows), and an
// optional "__metadata__" object of strings.
// Reading accepts F64, F32, F16 and BF16 tensors and converts them to the caller's type. A reader
// (of a file, or of bytes in memory: from_memory) validates the whole header when opened: sizes,
// offsets, byte counts and shapes are checked against the file size with overflow-safe arithmetic,
// so a malformed, truncated or hostile file raises file_error naming the tensor, never a crash. As in
// the reference implementation, the tensors must tile the data section exactly: sorted by offset,
// each starts where the one before it ends, the first at 0 and the last at the end of the file, so
// tensors that overlap (or alias), leave gaps or leave trailing bytes are refused, naming the tensor.
// Writing produces F32 (or F64) tensors, atomically.
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <deque>
#include <fstream>
#include <map>
#include <memory>
#include <sstream>
#include <string>
#include <type_traits>
#include <vector>

#include "tokenformer/core/error.hpp"
#include "tokenformer/core/tensor.hpp"
#include "tokenformer/io/atomic_file.hpp"
#include "tokenformer/io/json.hpp"

namespace tokenformer::io {

/// The element types this reader accepts, named as in a safetensors header.
enum class DType { F64, F32, F16, BF16 };

/// The header's name of `d`: "F64", "F32", "F16" or "BF16".
inline const char* to_string(DType d) {
  switch (d) {
    case DType::F64: return "F64";
    case DType::F32: return "F32";
    case DType::F16: return "F16";
    case DType::BF16: return "BF16";
  }
  return "?";
}
/// Bytes per element of `d`.
inline std::size_t element_size(DType d) {
  switch (d) {
    case DType::F64: return 8;
    case DType::F32: return 4;
    case DType::F16:
    case DType::BF16: return 2;
  }
  return 0;
}

/// IEEE half (binary16) bits to float, exact (subnormals, infinities and NaN included).
inline float half_to_float(std::uint16_t h) {
  const std::uint32_t sign = static_cast<std::uint32_t>(h & 0x8000u) << 16;
  const std::uint32_t exponent = (h >> 10) & 0x1Fu;
  std::uint32_t mantissa = h & 0x3FFu;
  std::uint32_t bits;
  if (exponent == 0) {
    if (mantissa == 0) {
      bits = sign;
    } else {  // subnormal: normalize
      int e = -1;
      do {
        ++e;
        mantissa <<= 1;
      } while ((mantissa & 0x400u) == 0);
      bits = sign | static_cast<std::uint32_t>(127 - 15 - e) << 23 | (mantissa & 0x3FFu) << 13;
    }
  } else if (exponent == 31) {
    bits = sign | 0x7F800000u | mantissa << 13;
  } else {
    bits = sign | (exponent + 127 - 15) << 23 | mantissa << 13;
  }
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}
/// bfloat16 bits to float (exact: bf16 is the top half of a float).
inline float bfloat16_to_float(std::uint16_t b) {
  const std::uint32_t bits = static_cast<std::uint32_t>(b) << 16;
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

/// What the header says about one tensor.
struct TensorInfo {
  std::string name;          ///< the tensor's name
  DType dtype = DType::F32;  ///< its element type
  Shape shape;               ///< its dimensions
  ///@{
  /// Byte offsets [begin, end) of its data: in the data section after the header for safetensors, in
  /// the file for a torch checkpoint (TorchCheckpointReader).
  std::uint64_t begin = 0, end = 0;
  ///@}
};

namespace detail {

/// Converts `count` little-endian elements of `dtype` at `raw` to T.
template <class T>
void decode_elements(DType dtype, const unsigned char* raw, std::size_t count, T* out) {
  for (std::size_t i = 0; i < count; ++i) {
    const unsigned char* p = raw + i * element_size(dtype);
    switch (dtype) {
      case DType::F64: {
        double d;
        std::memcpy(&d, p, 8);
        out[i] = static_cast<T>(d);
        break;
      }
      case DType::F32: {
        float f;
        std::memcpy(&f, p, 4);
        out[i] = static_cast<T>(f);
        break;
      }
      case DType::F16: out[i] = static_cast<T>(half_to_float(static_cast<std::uint16_t>(p[0] | p[1] << 8))); break;
      case DType::BF16: out[i] = static_cast<T>(bfloat16_to_float(static_cast<std::uint16_t>(p[0] | p[1] << 8))); break;
    }
  }
}

}  // namespace detail

/// An open safetensors file with a validated header. Tensor data is read on demand.
class SafetensorsReader {
 public:
  /// Opens `path` and validates its header; throws file_error naming the problem.
  explicit SafetensorsReader(const std::string& path)
      : SafetensorsReader(std::make_unique<std::ifstream>(path, std::ios::binary), path) {}
  /// Reads a safetensors file held in memory; `name` stands for the path in messages.
  static SafetensorsReader from_memory(std::string bytes, const std::string& name = "<memory>") {
    return SafetensorsReader(std::make_unique<std::istringstream>(std::move(bytes)), name);
  }
  /// Reads a safetensors file from a seekable stream; `path` names it in messages.
  SafetensorsReader(std::unique_ptr<std::istream> in, const std::string& path) : path_(path), file_(std::move(in)) {
    if (!file_ || !*file_) throw file_error("cannot open " + path);
    file_->seekg(0, std::ios::end);
    const auto size = static_cast<std::uint64_t>(file_->tellg());
    file_->seekg(0);
    if (size < 8) throw file_error(path + " is not a safetensors file: shorter than its 8-byte header length");
    unsigned char len[8] = {};
    file_->read(reinterpret_cast<char*>(len), 8);
    if (!*file_) throw file_error("cannot read " + path + " (not a regular file?)");
    std::uint64_t header_size = 0;
    for (int i = 7; i >= 0; --i) header_size = header_size << 8 | len[i];
    if (header_size > size - 8 || header_size > (std::uint64_t{1} << 27))
      throw file_error(path + ": header length " + std::to_string(header_size) + " exceeds the file size " +
                       std::to_string(size) + " (truncated or not a safetensors file)");
    std::string header(static_cast<std::size_t>(header_size), '\0');
    file_->read(header.data(), static_cast<std::streamsize>(header_size));
    if (!*file_) throw file_error("cannot read the header of " + path);
    data_start_ = 8 + header_size;
    const std::uint64_t data_size = size - data_start_;
    const Json root = parse_json(header, path + " header");
    for (const auto& [name, entry] : root.as_object(path + " header")) {
      if (name == "__metadata__") {
        for (const auto& [key, value] : entry.as_object(path + ": __metadata__"))
          metadata_[key] = value.as_string(path + ": __metadata__." + key);
        continue;
      }
      tensors_.emplace(name, parse_entry(name, entry, data_size));
    }
    check_layout(data_size);
  }

  const std::string& path() const { return path_; }                                   ///< the path, for messages
  const std::map<std::string, TensorInfo>& tensors() const { return tensors_; }       ///< header entries, by name
  const std::map<std::string, std::string>& metadata() const { return metadata_; }    ///< the __metadata__ strings
  bool contains(const std::string& name) const { return tensors_.count(name) != 0; }  ///< whether it has `name`

  /// Header entry of `name`; throws file_error if the file has no such tensor.
  const TensorInfo& info(const std::string& name) const {
    auto it = tensors_.find(name);
    if (it == tensors_.end()) throw file_error(path_ + ": missing tensor '" + name + "'");
    return it->second;
  }

  /// Reads tensor `name`, which must have shape `expected`, converting to T, into host memory `out`.
  template <class T>
  void read(const std::string& name, const Shape& expected, T* out) {
    static_assert(std::is_floating_point<T>::value, "safetensors tensors are read as float or double");
    const TensorInfo& t = info(name);
    if (t.shape != expected)
      throw file_error(path_ + ": tensor '" + name + "' has shape " + t.shape.str() + ", expected " + expected.str());
    const std::size_t count = static_cast<std::size_t>(expected.numel());
    std::vector<unsigned char> raw(count * element_size(t.dtype));
    file_->clear();
    file_->seekg(static_cast<std::streamoff>(data_start_ + t.begin));
    file_->read(reinterpret_cast<char*>(raw.data()), static_cast<std::streamsize>(raw.size()));
    if (!*file_) throw file_error(path_ + ": cannot read tensor '" + name + "' (file truncated?)");
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
  TensorInfo parse_entry(const std::string& name, const Json& entry, std::uint64_t data_size) const {
    const std::string what = path_ + ": tensor '" + name + "'";
    if (!entry.is_object()) throw file_error(what + ": header entry must be an object");
    TensorInfo t;
    t.name = name;
    const Json* dtype = entry.find("dtype");
    const Json* shape = entry.find("shape");
    const Json* offsets = entry.find("data_offsets");
    if (!dtype || !shape || !offsets) throw file_error(what + ": header entry needs dtype, shape and data_offsets");
    const std::string& d = dtype->as_string(what + " dtype");
    if (d == "F64")
      t.dtype = DType::F64;
    else if (d == "F32")
      t.dtype = DType::F32;
    else if (d == "F16")
      t.dtype = DType::F16;
    else if (d == "BF16")
      t.dtype = DType::BF16;
    else
      throw file_error(what + ": unsupported dtype " + d + " (expected F64, F32, F16 or BF16)");
    const auto& dims = shape->as_array(what + " shape");
    if (dims.size() > static_cast<std::size_t>(Shape::max_rank))
      throw file_error(what + ": rank " + std::to_string(dims.size()) + " is above the supported 4");
    std::uint64_t numel = 1;
    for (const auto& dim : dims) {
      const auto n = static_cast<std::uint64_t>(dim.as_integer(what + " shape", 0, std::int64_t{1} << 40));
      if (n != 0 && numel > (std::uint64_t{1} << 50) / n) throw file_error(what + ": shape is too large");
      numel *= n;
      t.shape.push_back(static_cast<index_t>(n));
    }
    const auto& off = offsets->as_array(what + " data_offsets");
    if (off.size() != 2) throw file_error(what + ": data_offsets must be [begin, end]");
    t.begin = static_cast<std::uint64_t>(off[0].as_integer(what + " data_offsets", 0, std::int64_t{1} << 52));
    t.end = static_cast<std::uint64_t>(off[1].as_integer(what + " data_offsets", 0, std::int64_t{1} << 52));
    if (t.end < t.begin) throw file_error(what + ": data_offsets end before begin");
    if (t.end > data_size)
      throw file_error(what + ": data ends at byte " + std::to_string(t.end) + " but the file holds only " +
                       std::to_string(data_size) + " data bytes (truncated file?)");
    if (t.end - t.begin != numel * element_size(t.dtype))
      throw file_error(what + ": holds " + std::to_string(t.end - t.begin) + " bytes but shape " + t.shape.str() +
                       " of " + d + " needs " + std::to_string(numel * element_size(t.dtype)));
    return t;
  }

  /// The rule of the reference implementation (Hugging Face safetensors' Metadata::validate): sorted
  /// by (begin, end), each tensor starts where the one before it ends, the first at 0, and the last
  /// ends at the end of the data section. So no byte belongs to two tensors (no overlap, no alias)
  /// and none to no tensor (no gap, no trailing data). Empty tensors may sit between others.
  void check_layout(std::uint64_t data_size) const {
    std::vector<const TensorInfo*> order;
    order.reserve(tensors_.size());
    for (const auto& entry : tensors_) order.push_back(&entry.second);
    std::sort(order.begin(), order.end(), [](const TensorInfo* a, const TensorInfo* b) {
      return a->begin != b->begin ? a->begin < b->begin : a->end < b->end;
    });
    const TensorInfo* previous = nullptr;
    std::uint64_t end = 0;
    for (const TensorInfo* t : order) {
      const std::string what = path_ + ": tensor '" + t->name + "' starts at data byte " + std::to_string(t->begin);
      if (t->begin < end)
        throw file_error(what + ", inside tensor '" + previous->name + "' [" + std::to_string(previous->begin) + ", " +
                         std::to_string(previous->end) + ") (tensors overlap)");
      if (t->begin > end && previous == nullptr)
        throw file_error(what + " but the data section starts at byte 0 (" + std::to_string(t->begin) +
                         " bytes belong to no tensor)");
      if (t->begin > end)
        throw file_error(what + " but the tensor before it, '" + previous->name + "', ends at byte " +
                         std::to_string(end) + " (" + std::to_string(t->begin - end) +
                         " bytes between them belong to no tensor)");
      previous = t;
      end = t->end;
    }
    if (end != data_size)
      throw file_error(path_ + ": the tensors end at data byte " + std::to_string(end) + " but the file holds " +
                       std::to_string(data_size) + " data bytes (" + std::to_string(data_size - end) +
                       " bytes belong to no tensor)");
  }

  std::string path_;
  std::unique_ptr<std::istream> file_;  // the file, or the bytes of from_memory
  std::uint64_t data_start_ = 0;
  std::map<std::string, TensorInfo> tensors_;
  std::map<std::string, std::string> metadata_;
};

/// Collects tensors and writes them as one safetensors file, atomically. Tensors are written in the
/// order added. Host tensors are referenced (keep them alive until write()); others are copied.
class SafetensorsWriter {
 public:
  /// Adds `count = shape.numel()` values from host memory; T is float (F32) or double (F64).
  template <class T>
  void add(const std::string& name, const Shape& shape, const T* host) {
    static_assert(std::is_same<T, float>::value || std::is_same<T, double>::value,
                  "safetensors writing supports float (F32) and double (F64)");
    if (name == "__metadata__") throw argument_error("'__metadata__' is reserved by the format, not a tensor name");
    if (index_.count(name)) throw argument_error("tensor '" + name + "' added twice");
    index_[name] = entries_.size();
    entries_.push_back(Entry{name, std::is_same<T, float>::value ? DType::F32 : DType::F64, shape,
                             reinterpret_cast<const unsigned char*>(host)});
  }
  /// Adds a tensor on any device (copied to host unless its memory is host-accessible).
  template <class T, class Device>
  void add(const std::string& name, const Tensor<T, Device>& tensor) {
    if constexpr (device_memory<Device>::host_accessible) {
      add(name, tensor.shape(), tensor.data());
    } else {
      auto& copy = copies_.emplace_back(static_cast<std::size_t>(tensor.size()) * sizeof(T));
      tensor.copy_to_host(reinterpret_cast<T*>(copy.data()));
      add(name, tensor.shape(), reinterpret_cast<const T*>(copy.data()));
    }
  }
  /// Sets a __metadata__ string of the file to write.
  void set_metadata(const std::string& key, const std::string& value) { metadata_[key] = value; }

  /// Writes the file; an existing file at `path` is replaced only once the new one is complete.
  void write(const std::string& path) const {
    Json::Object header;
    std::uint64_t offset = 0;
    for (const auto& e : entries_) {
      Json::Array dims;
      for (int i = 0; i < e.shape.rank(); ++i) dims.emplace_back(static_cast<long long>(e.shape[i]));
      const std::uint64_t bytes = static_cast<std::uint64_t>(e.shape.numel()) * element_size(e.dtype);
      header[e.name] = Json(
          Json::Object{{"dtype", Json(to_string(e.dtype))},
                       {"shape", Json(std::move(dims))},
                       {"data_offsets", Json(Json::Array{Json(static_cast<unsigned long long>(offset)),
                                                         Json(static_cast<unsigned long long>(offset + bytes))})}});
      offset += bytes;
    }
    if (!metadata_.empty()) {
      Json::Object meta;
      for (const auto& [k, v] : metadata_) meta[k] = Json(v);
      header["__metadata__"] = Json(std::move(meta));
    }
    std::string text = Json(std::move(header)).dump();
    while (text.size() % 8 != 0) text += ' ';
    write_file_atomically(path, [&](FileSink& sink) {
      unsigned char len[8];
      std::uint64_t n = text.size();
      for (int i = 0; i < 8; ++i) len[i] = static_cast<unsigned char>(n >> (8 * i));
      sink.write(len, 8);
      sink.write(text.data(), text.size());
      for (const auto& e : entries_)
        sink.write(e.data, static_cast<std::size_t>(e.shape.numel()) * element_size(e.dtype));
    });
  }

 private:
  struct Entry {
    std::string name;
    DType dtype;
    Shape shape;
    const unsigned char* data;
  };
  std::vector<Entry> entries_;
  std::map<std::string, std::size_t> index_;
  std::map<std::string, std::string> metadata_;
  std::deque<std::vector<unsigned char>> copies_;
};

}  // namespace tokenformer::io
