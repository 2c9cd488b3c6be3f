// tokenformer/io/zip.hpp: the directory of a zip archive whose entries are stored (not compressed),
// as torch.save writes them, read from a file or from bytes in memory.
//
// Format: local headers each followed by an entry's bytes, then the central directory (one record
// per entry: name, sizes, method, offset of its local header), then the end-of-central-directory
// record (and, before it, the zip64 end record and its locator when sizes or offsets exceed 32 bits;
// zip64 extra fields in the central records carry those). The reader finds the end record in the
// last 64 KiB + 22 bytes, reads the central directory and checks every entry's local header.
// Safety: every offset and size is checked against the file size with overflow-safe arithmetic;
// entry data must lie before the central directory; compressed, encrypted, multi-disk and duplicate
// entries are refused; the central directory is bounded (256 MiB, 2^20 entries). Any violation
// raises file_error naming the file and what is wrong, never a crash. CRCs are not checked (entries
// are read on demand, in parts).
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "tokenformer/core/error.hpp"

namespace tokenformer::io {

/// Random-access bytes of a file or of a buffer in memory. `name()` stands for the file in messages.
class ByteSource {
 public:
  /// Opens the file at `path`; throws file_error if it cannot be opened or is not a regular file.
  static ByteSource open_file(const std::string& path) {
    std::error_code ec;
    if (std::filesystem::is_directory(path, ec)) throw file_error("cannot read " + path + ": it is a directory");
    ByteSource s;
    s.name_ = path;
    s.file_ = std::make_unique<std::ifstream>(path, std::ios::binary);
    if (!*s.file_) throw file_error("cannot open " + path);
    s.file_->seekg(0, std::ios::end);
    const std::streamoff end = s.file_->tellg();
    if (!*s.file_ || end < 0) throw file_error("cannot read " + path + " (not a regular file?)");
    s.size_ = static_cast<std::uint64_t>(end);
    return s;
  }
  /// The bytes `bytes` (kept by the source).
  static ByteSource from_memory(std::string bytes, std::string name) {
    ByteSource s;
    s.name_ = std::move(name);
    s.memory_ = std::make_unique<std::string>(std::move(bytes));
    s.size_ = s.memory_->size();
    return s;
  }

  const std::string& name() const { return name_; }  ///< the path or name, for messages
  std::uint64_t size() const { return size_; }       ///< length in bytes
  /// True when [offset, offset + count) lies within the source.
  bool contains(std::uint64_t offset, std::uint64_t count) const { return offset <= size_ && count <= size_ - offset; }

  /// Copies `count` bytes at `offset` to `out`; throws file_error (naming `what`) if they are not all there.
  void read(std::uint64_t offset, void* out, std::size_t count, const std::string& what) {
    if (!contains(offset, count))
      throw file_error(name_ + ": " + what + " at byte " + std::to_string(offset) + " (" + std::to_string(count) +
                       " bytes) lies beyond the end of the file (" + std::to_string(size_) + " bytes; truncated?)");
    if (count == 0) return;
    if (memory_) {
      std::memcpy(out, memory_->data() + offset, count);
      return;
    }
    file_->clear();
    file_->seekg(static_cast<std::streamoff>(offset));
    file_->read(static_cast<char*>(out), static_cast<std::streamsize>(count));
    if (!*file_) throw file_error("cannot read " + what + " of " + name_ + " (file changed or truncated?)");
  }
  /// The `count` bytes at `offset` as a string; throws file_error (naming `what`) as read() does.
  std::string read_string(std::uint64_t offset, std::size_t count, const std::string& what) {
    std::string s(count, '\0');
    read(offset, s.data(), count, what);
    return s;
  }

 private:
  ByteSource() = default;
  std::string name_;
  std::uint64_t size_ = 0;
  std::unique_ptr<std::ifstream> file_;
  std::unique_ptr<std::string> memory_;
};

/// One stored entry: its bytes are [offset, offset + size) of the archive.
struct ZipEntry {
  std::string name;          ///< the entry's path in the archive
  std::uint64_t offset = 0;  ///< first byte of its data in the archive
  std::uint64_t size = 0;    ///< bytes of data
};

namespace detail {

inline std::uint16_t le16(const unsigned char* p) { return static_cast<std::uint16_t>(p[0] | p[1] << 8); }
inline std::uint32_t le32(const unsigned char* p) {
  return static_cast<std::uint32_t>(p[0]) | static_cast<std::uint32_t>(p[1]) << 8 |
         static_cast<std::uint32_t>(p[2]) << 16 | static_cast<std::uint32_t>(p[3]) << 24;
}
inline std::uint64_t le64(const unsigned char* p) {
  return static_cast<std::uint64_t>(le32(p)) | static_cast<std::uint64_t>(le32(p + 4)) << 32;
}

/// A name for messages: printable ASCII as is, other bytes as \xNN, at most 200 characters.
inline std::string printable(const std::string& s) {
  static const char* const hex = "0123456789abcdef";
  std::string out;
  for (const char byte : s) {
    const auto c = static_cast<unsigned char>(byte);  // the byte, 0 to 255
    if (out.size() >= 200) return out + "...";
    if (c >= 0x20 && c < 0x7F && c != '\\') {
      out += static_cast<char>(c);
    } else {
      out += "\\x";
      out += hex[c >> 4];
      out += hex[c & 15];
    }
  }
  return out;
}

}  // namespace detail

/// Reads and validates the directory of a zip archive of stored entries; returns the entries by name.
inline std::map<std::string, ZipEntry> read_zip_directory(ByteSource& src) {
  using detail::le16;
  using detail::le32;
  using detail::le64;
  const std::string& path = src.name();
  const std::uint64_t size = src.size();
  constexpr std::uint64_t eocd_size = 22, locator_size = 20, zip64_eocd_size = 56, central_size = 46, local_size = 30;
  constexpr std::uint64_t max_directory = std::uint64_t{1} << 28, max_entries = std::uint64_t{1} << 20;
  if (size < eocd_size) throw file_error(path + " is not a zip archive: " + std::to_string(size) + " bytes");

  // The end-of-central-directory record: the last signature within the final 64 KiB + 22 bytes whose
  // comment fits in the file.
  const std::uint64_t window = std::min<std::uint64_t>(size, eocd_size + 0xFFFF);
  const std::string tail = src.read_string(size - window, static_cast<std::size_t>(window), "the end of the archive");
  const auto* t = reinterpret_cast<const unsigned char*>(tail.data());
  std::uint64_t eocd = size;  // position in the file; size = not found
  for (std::uint64_t i = window - eocd_size + 1; i-- > 0;) {
    if (le32(t + i) == 0x06054b50u && i + eocd_size + le16(t + i + 20) <= window) {
      eocd = size - window + i;
      break;
    }
  }
  if (eocd == size)
    throw file_error(path + " is not a zip archive (no end-of-central-directory record; truncated file?)");
  const unsigned char* e = t + (eocd - (size - window));
  std::uint64_t disk = le16(e + 4), directory_disk = le16(e + 6), disk_entries = le16(e + 8), entries = le16(e + 10);
  std::uint64_t directory_size = le32(e + 12), directory_offset = le32(e + 16);
  std::uint64_t directory_end_limit = eocd;  // the central directory ends before the record after it

  // zip64: a locator right before the end record points at the zip64 end record.
  if (eocd >= locator_size) {
    unsigned char loc[locator_size];
    src.read(eocd - locator_size, loc, locator_size, "the zip64 locator");
    if (le32(loc) == 0x07064b50u) {
      const std::uint64_t record = le64(loc + 8);
      if (le32(loc + 4) != 0 || le32(loc + 16) > 1)
        throw file_error(path + ": multi-disk zip archives are not supported");
      if (record > eocd - locator_size || eocd - locator_size - record < zip64_eocd_size)
        throw file_error(path + ": the zip64 end record offset " + std::to_string(record) +
                         " is outside the archive (corrupt file?)");
      unsigned char z[zip64_eocd_size];
      src.read(record, z, zip64_eocd_size, "the zip64 end record");
      if (le32(z) != 0x06064b50u) throw file_error(path + ": bad zip64 end record signature (corrupt file?)");
      disk = le32(z + 16);
      directory_disk = le32(z + 20);
      disk_entries = le64(z + 24);
      entries = le64(z + 32);
      directory_size = le64(z + 40);
      directory_offset = le64(z + 48);
      directory_end_limit = record;
    }
  }
  if (disk != 0 || directory_disk != 0 || disk_entries != entries)
    throw file_error(path + ": multi-disk zip archives are not supported");
  if (directory_offset > directory_end_limit || directory_size > directory_end_limit - directory_offset)
    throw file_error(path + ": the central directory (offset " + std::to_string(directory_offset) + ", " +
                     std::to_string(directory_size) + " bytes) lies outside the archive (truncated or corrupt file?)");
  if (directory_size > max_directory)
    throw file_error(path + ": the central directory is larger than " + std::to_string(max_directory) + " bytes");
  if (entries > max_entries || entries > directory_size / central_size)
    throw file_error(path + ": the central directory cannot hold " + std::to_string(entries) +
                     " entries (corrupt file?)");
  const std::string directory =
      src.read_string(directory_offset, static_cast<std::size_t>(directory_size), "the central directory");
  const auto* d = reinterpret_cast<const unsigned char*>(directory.data());

  std::map<std::string, ZipEntry> result;
  std::uint64_t at = 0;
  for (std::uint64_t n = 0; n < entries; ++n) {
    const std::string where = path + ": central directory entry " + std::to_string(n);
    if (directory_size - at < central_size || le32(d + at) != 0x02014b50u)
      throw file_error(where + ": bad signature or truncated record (corrupt file?)");
    const unsigned char* c = d + at;
    const std::uint16_t flags = le16(c + 8), method = le16(c + 10);
    std::uint64_t compressed = le32(c + 20), uncompressed = le32(c + 24);
    const std::uint64_t name_len = le16(c + 28), extra_len = le16(c + 30), comment_len = le16(c + 32);
    std::uint64_t entry_disk = le16(c + 34), local = le32(c + 42);
    if (directory_size - at - central_size < name_len + extra_len + comment_len)
      throw file_error(where + ": its name and fields run past the central directory (corrupt file?)");
    ZipEntry entry;
    entry.name.assign(reinterpret_cast<const char*>(c + central_size), static_cast<std::size_t>(name_len));
    const std::string what = path + ": zip entry '" + detail::printable(entry.name) + "'";
    // zip64 extra field: the 64-bit values of the fields that hold 0xFFFFFFFF (0xFFFF for the disk).
    const unsigned char* x = c + central_size + name_len;
    for (std::uint64_t i = 0; i + 4 <= extra_len;) {
      const std::uint16_t id = le16(x + i), len = le16(x + i + 2);
      if (len > extra_len - i - 4) throw file_error(what + ": malformed extra field");
      if (id == 0x0001) {
        const unsigned char* f = x + i + 4;
        std::uint64_t left = len;
        const auto take = [&](std::uint64_t& field, std::uint64_t marker, std::uint64_t bytes) {
          if (field != marker) return;
          if (left < bytes) throw file_error(what + ": zip64 extra field is too short");
          field = bytes == 8 ? le64(f) : le32(f);
          f += bytes;
          left -= bytes;
        };
        take(uncompressed, 0xFFFFFFFFu, 8);
        take(compressed, 0xFFFFFFFFu, 8);
        take(local, 0xFFFFFFFFu, 8);
        take(entry_disk, 0xFFFFu, 4);
      }
      i += 4 + len;
    }
    at += central_size + name_len + extra_len + comment_len;
    if (flags & 0x41u) throw file_error(what + " is encrypted");
    if (method != 0)
      throw file_error(what + " is compressed (method " + std::to_string(method) +
                       "); only stored (uncompressed) entries are supported, as torch.save writes them");
    if (compressed != uncompressed)
      throw file_error(what + ": a stored entry's compressed size " + std::to_string(compressed) +
                       " differs from its size " + std::to_string(uncompressed) + " (corrupt file?)");
    if (entry_disk != 0) throw file_error(what + ": multi-disk zip archives are not supported");

    // The local header: signature, the same name, and the data after it, all before the directory.
    if (local > directory_offset || directory_offset - local < local_size)
      throw file_error(what + ": local header offset " + std::to_string(local) + " is outside the archive data");
    unsigned char h[local_size];
    src.read(local, h, local_size, "the local header of entry '" + detail::printable(entry.name) + "'");
    if (le32(h) != 0x04034b50u) throw file_error(what + ": bad local header signature (corrupt file?)");
    const std::uint64_t local_name = le16(h + 26), local_extra = le16(h + 28);
    const std::uint64_t data = local + local_size + local_name + local_extra;
    if (data > directory_offset || uncompressed > directory_offset - data)
      throw file_error(what + ": its data (" + std::to_string(uncompressed) + " bytes at " + std::to_string(data) +
                       ") run past the archive data (truncated or corrupt file?)");
    if (local_name != name_len || src.read_string(local + local_size, static_cast<std::size_t>(local_name),
                                                  "the local name of an entry") != entry.name)
      throw file_error(what + ": the local header names another entry (corrupt file?)");
    entry.offset = data;
    entry.size = uncompressed;
    const std::string key = entry.name;
    if (!result.emplace(key, std::move(entry)).second) throw file_error(what + " appears twice in the archive");
  }
  return result;
}

}  // namespace tokenformer::io
