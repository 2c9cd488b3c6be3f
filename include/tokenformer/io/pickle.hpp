// tokenformer/io/pickle.hpp: a restricted unpickler for the data.pkl of torch.save checkpoints.
//
// A pickle is a program for a stack machine; Python's unpickler imports and calls whatever globals it
// names, so loading an untrusted pickle runs arbitrary code. This one runs nothing: it builds a small
// tree of plain values (None, bools, integers, floats, strings, tuples, lists, dicts) and knows only
// the globals a state dict needs: collections.OrderedDict, torch._utils._rebuild_tensor_v2,
// torch._utils._rebuild_parameter and torch.{Float,Half,BFloat16,Double}Storage. Any other global
// (posix.system, builtins.eval, ...) raises file_error naming it, before anything could call it;
// REDUCE evaluates only the allowed rebuild functions, into tensor descriptors (storage, offset,
// sizes, strides); BUILD on a dict (Module.state_dict()'s _metadata) is ignored.
// Opcodes: those of protocol 2 that torch.save emits (PROTO, GLOBAL, BINPUT/BINGET/LONG_BINPUT/
// LONG_BINGET, MARK, TUPLE/TUPLE1-3, EMPTY_DICT/LIST/TUPLE, SETITEM(S), APPEND(S), BININT/BININT1/
// BININT2, LONG1 up to 8 bytes, BINUNICODE, BINPERSID, REDUCE, BUILD, NEWTRUE/NEWFALSE, NONE,
// BINFLOAT, STOP) and, for pickle_protocol 4, SHORT_BINUNICODE, BINUNICODE8, FRAME, MEMOIZE and
// STACK_GLOBAL; any other opcode raises file_error naming it (hex) and its byte offset.
// Safety: no recursion; objects, container items, the stack, MARK nesting, the memo, string lengths
// and tensor ranks are bounded (Limits); every read is checked against the end of the data. So a
// hostile pickle costs at most time linear in its size and bounded memory, and ends in file_error.
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <map>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "tokenformer/core/error.hpp"
#include "tokenformer/io/zip.hpp"

/// A restricted unpickler for the data.pkl of torch.save checkpoints: plain values and tensor
/// descriptors only, never a call to an arbitrary global.
namespace tokenformer::io::pickle {

/// Bounds on what one pickle may build.
struct Limits {
  std::size_t max_objects = std::size_t{1} << 22;  ///< values created (each opcode creates at most one)
  std::size_t max_items = std::size_t{1} << 24;    ///< entries in all tuples, lists and dicts together
  std::size_t max_stack = std::size_t{1} << 20;    ///< values on the stack at once
  std::size_t max_marks = std::size_t{1} << 12;    ///< MARKs open at once (nesting depth)
  std::size_t max_memo = std::size_t{1} << 22;     ///< memo entries
  std::size_t max_string = std::size_t{1} << 20;   ///< bytes of one string
  std::size_t max_rank = 16;                       ///< dimensions of one tensor
};

/// The element types of the storages torch.save writes that this reader accepts.
enum class StorageType { float64, float32, float16, bfloat16 };

/// A storage: the zip entry `data/{key}` holds `numel` elements of `type`.
struct StorageRef {
  StorageType type = StorageType::float32;  ///< the element type
  std::string key;                          ///< the storage's name in the archive's data/ folder
  std::int64_t numel = 0;                   ///< number of elements
};

/// What _rebuild_tensor_v2 was asked to build: a view of storage `storage` (an index into
/// StateDict::storages) at element `offset` with `sizes` and `strides` (in elements, unchecked here).
struct TensorRef {
  std::size_t storage = 0;  ///< index into StateDict::storages
  std::int64_t offset = 0;  ///< first element in the storage
  ///@{
  /// The view's sizes and strides, one per dimension, in elements.
  std::vector<std::int64_t> sizes, strides;
  ///@}
};

/// The tensors of a state dict, in dict order, and the storages they view.
struct StateDict {
  std::vector<StorageRef> storages;                        ///< every storage a tensor views
  std::vector<std::pair<std::string, TensorRef>> tensors;  ///< (name, tensor) in dict order
  std::size_t other_values = 0;                            ///< entries whose value is not a tensor (ignored)
};

namespace detail {

class TorchUnpickler {
 public:
  TorchUnpickler(const unsigned char* data, std::size_t size, std::string what, const Limits& limits)
      : data_(data), size_(size), what_(std::move(what)), limits_(limits) {}

  StateDict run() {
    for (;;) {
      if (pos_ >= size_) fail("the pickle ends without a STOP opcode (truncated?)");
      op_pos_ = pos_;
      const unsigned char op = data_[pos_++];
      switch (op) {
        case 0x80: {  // PROTO
          const unsigned version = byte();
          if (version > 5) fail("pickle protocol " + std::to_string(version) + " is not supported");
          break;
        }
        case 0x95: take(8); break;       // FRAME: a length hint; the frame's opcodes follow inline
        case '.': return finish(top());  // STOP
        case 'c': {                      // GLOBAL
          const std::string module = line();
          const std::string name = line();
          push(global(module, name));
          break;
        }
        case 0x93: {  // STACK_GLOBAL
          const std::uint32_t name = pop(), module = pop();
          if (node(name).kind != Kind::string || node(module).kind != Kind::string)
            fail("STACK_GLOBAL needs two strings");
          push(global(strings_[node(module).index], strings_[node(name).index]));
          break;
        }
        case 'q': memo_put(byte()); break;                                     // BINPUT
        case 'r': memo_put(u32()); break;                                      // LONG_BINPUT
        case 0x94: memo_put(static_cast<std::uint32_t>(memo_.size())); break;  // MEMOIZE
        case 'h': memo_get(byte()); break;                                     // BINGET
        case 'j': memo_get(u32()); break;                                      // LONG_BINGET
        case '(':                                                              // MARK
          if (marks_.size() >= limits_.max_marks)
            fail("more than " + std::to_string(limits_.max_marks) + " nested MARKs");
          marks_.push_back(stack_.size());
          break;
        case 't': push(container(Kind::tuple, pop_mark())); break;  // TUPLE
        case 0x85: push(container(Kind::tuple, pop_n(1))); break;   // TUPLE1
        case 0x86: push(container(Kind::tuple, pop_n(2))); break;   // TUPLE2
        case 0x87: push(container(Kind::tuple, pop_n(3))); break;   // TUPLE3
        case ')': push(container(Kind::tuple, {})); break;          // EMPTY_TUPLE
        case ']': push(container(Kind::list, {})); break;           // EMPTY_LIST
        case '}': push(container(Kind::dict, {})); break;           // EMPTY_DICT
        case 's': {                                                 // SETITEM
          std::vector<std::uint32_t> pair = pop_n(2);
          add_items(Kind::dict, pair);
          break;
        }
        case 'u': {  // SETITEMS
          std::vector<std::uint32_t> items = pop_mark();
          if (items.size() % 2 != 0) fail("SETITEMS with an odd number of keys and values");
          add_items(Kind::dict, items);
          break;
        }
        case 'a': {  // APPEND
          std::vector<std::uint32_t> item = pop_n(1);
          add_items(Kind::list, item);
          break;
        }
        case 'e': add_items(Kind::list, pop_mark()); break;  // APPENDS
        case 'J': {                                          // BININT: 4 bytes, signed
          std::int64_t v = u32();
          if (v >= (std::int64_t{1} << 31)) v -= std::int64_t{1} << 32;
          push(make(Kind::integer, 0, v));
          break;
        }
        case 'K': push(make(Kind::integer, 0, byte())); break;  // BININT1
        case 'M': {                                             // BININT2
          const unsigned char* p = take(2);
          push(make(Kind::integer, 0, p[0] | p[1] << 8));
          break;
        }
        case 0x8a: push(make(Kind::integer, 0, long1())); break;  // LONG1
        case 'X': string(u32()); break;                           // BINUNICODE
        case 0x8c: string(byte()); break;                         // SHORT_BINUNICODE
        case 0x8d: string(u64()); break;                          // BINUNICODE8
        case 'G': {                                               // BINFLOAT: 8 bytes, big-endian
          const unsigned char* p = take(8);
          std::uint64_t bits = 0;
          for (int i = 0; i < 8; ++i) bits = bits << 8 | p[i];
          std::int64_t v;
          std::memcpy(&v, &bits, 8);
          push(make(Kind::floating, 0, v));
          break;
        }
        case 0x88: push(make(Kind::boolean, 0, 1)); break;  // NEWTRUE
        case 0x89: push(make(Kind::boolean, 0, 0)); break;  // NEWFALSE
        case 'N': push(make(Kind::none)); break;            // NONE
        case 'Q': push(persistent(pop())); break;           // BINPERSID
        case 'R': {                                         // REDUCE
          const std::uint32_t args = pop();
          const std::uint32_t callable = pop();
          push(reduce(callable, args));
          break;
        }
        case 'b': {  // BUILD: sets attributes; only a dict's (state_dict()'s _metadata) are accepted, and ignored
          const std::uint32_t state = pop();
          (void)state;
          const Kind target = node(top()).kind;
          if (target != Kind::dict) fail(std::string("BUILD on ") + kind_name(target) + " is not supported");
          break;
        }
        default: {
          static const char* const hex = "0123456789abcdef";
          fail(std::string("unsupported pickle opcode 0x") + hex[op >> 4] + hex[op & 15]);
        }
      }
    }
  }

 private:
  enum class Kind : std::uint8_t {
    none,
    boolean,
    integer,
    floating,
    string,
    tuple,
    list,
    dict,
    global,
    storage,
    tensor
  };
  enum class Callable : std::uint8_t { ordered_dict, rebuild_tensor_v2, rebuild_parameter, storage_type };
  struct Node {
    Kind kind;
    std::uint32_t index;  // into strings_, containers_, result_.storages or tensors_; the StorageType of a global
    std::int64_t value;   // integer, bool, float bits, Callable
  };

  static const char* kind_name(Kind k) {
    switch (k) {
      case Kind::none: return "None";
      case Kind::boolean: return "a bool";
      case Kind::integer: return "an integer";
      case Kind::floating: return "a float";
      case Kind::string: return "a string";
      case Kind::tuple: return "a tuple";
      case Kind::list: return "a list";
      case Kind::dict: return "a dict";
      case Kind::global: return "a global";
      case Kind::storage: return "a storage";
      case Kind::tensor: return "a tensor";
    }
    return "?";
  }

  [[noreturn]] void fail(const std::string& message) const {
    throw file_error(what_ + ": " + message + " (pickle opcode at byte " + std::to_string(op_pos_) + ")");
  }

  // ---- input ----
  const unsigned char* take(std::uint64_t n) {
    if (n > size_ - pos_) fail("the pickle ends inside an opcode's argument (truncated?)");
    const unsigned char* p = data_ + pos_;
    pos_ += static_cast<std::size_t>(n);
    return p;
  }
  unsigned byte() { return *take(1); }
  std::uint32_t u32() {
    const unsigned char* p = take(4);
    return static_cast<std::uint32_t>(p[0]) | static_cast<std::uint32_t>(p[1]) << 8 |
           static_cast<std::uint32_t>(p[2]) << 16 | static_cast<std::uint32_t>(p[3]) << 24;
  }
  std::uint64_t u64() {
    const std::uint64_t low = u32();
    return low | static_cast<std::uint64_t>(u32()) << 32;
  }
  std::int64_t long1() {
    const unsigned n = byte();
    if (n > 8) fail("LONG1 integer of " + std::to_string(n) + " bytes is too large");
    const unsigned char* p = take(n);
    std::uint64_t u = 0;
    for (unsigned i = n; i-- > 0;) u = u << 8 | p[i];
    if (n > 0 && n < 8 && (p[n - 1] & 0x80)) u |= ~std::uint64_t{0} << (8 * n);  // sign-extend
    std::int64_t v;
    std::memcpy(&v, &u, 8);
    return v;
  }
  /// A newline-terminated line of GLOBAL (at most 256 bytes).
  std::string line() {
    const std::size_t limit = std::min<std::size_t>(size_ - pos_, 257);
    for (std::size_t i = 0; i < limit; ++i) {
      if (data_[pos_ + i] == '\n') {
        std::string s(reinterpret_cast<const char*>(data_ + pos_), i);
        pos_ += i + 1;
        return s;
      }
    }
    fail("GLOBAL name is unterminated or longer than 256 bytes");
  }
  void string(std::uint64_t n) {
    if (n > limits_.max_string) fail("string of " + std::to_string(n) + " bytes is too long");
    const unsigned char* p = take(n);
    strings_.emplace_back(reinterpret_cast<const char*>(p), static_cast<std::size_t>(n));
    push(make(Kind::string, static_cast<std::uint32_t>(strings_.size() - 1)));
  }

  // ---- values and the stack ----
  std::uint32_t make(Kind kind, std::uint32_t index = 0, std::int64_t value = 0) {
    if (nodes_.size() >= limits_.max_objects)
      fail("the pickle creates more than " + std::to_string(limits_.max_objects) + " objects");
    nodes_.push_back(Node{kind, index, value});
    return static_cast<std::uint32_t>(nodes_.size() - 1);
  }
  const Node& node(std::uint32_t id) const { return nodes_[id]; }
  std::uint32_t container(Kind kind, std::vector<std::uint32_t> items) {
    count_items(items.size());
    containers_.push_back(std::move(items));
    return make(kind, static_cast<std::uint32_t>(containers_.size() - 1));
  }
  void count_items(std::size_t n) {
    if (n > limits_.max_items - items_)
      fail("the pickle's containers hold more than " + std::to_string(limits_.max_items) + " items");
    items_ += n;
  }
  /// Appends `items` to the dict or list on top of the stack.
  void add_items(Kind kind, const std::vector<std::uint32_t>& items) {
    const Node& target = node(top());
    if (target.kind != kind)
      fail(std::string(kind == Kind::dict ? "SETITEM(S)" : "APPEND(S)") + " on " + kind_name(target.kind));
    count_items(items.size());
    auto& c = containers_[target.index];
    c.insert(c.end(), items.begin(), items.end());
  }
  std::size_t floor() const { return marks_.empty() ? 0 : marks_.back(); }
  void push(std::uint32_t id) {
    if (stack_.size() >= limits_.max_stack)
      fail("the pickle's stack grows beyond " + std::to_string(limits_.max_stack) + " values");
    stack_.push_back(id);
  }
  std::uint32_t top() const {
    if (stack_.size() <= floor()) fail("stack underflow (malformed pickle)");
    return stack_.back();
  }
  std::uint32_t pop() {
    const std::uint32_t id = top();
    stack_.pop_back();
    return id;
  }
  std::vector<std::uint32_t> pop_n(std::size_t n) {
    if (stack_.size() - floor() < n) fail("stack underflow (malformed pickle)");
    std::vector<std::uint32_t> items(stack_.end() - static_cast<std::ptrdiff_t>(n), stack_.end());
    stack_.resize(stack_.size() - n);
    return items;
  }
  std::vector<std::uint32_t> pop_mark() {
    if (marks_.empty()) fail("an opcode needs a MARK but there is none (malformed pickle)");
    const std::size_t start = marks_.back();
    marks_.pop_back();
    std::vector<std::uint32_t> items(stack_.begin() + static_cast<std::ptrdiff_t>(start), stack_.end());
    stack_.resize(start);
    return items;
  }
  void memo_put(std::uint32_t key) {
    const std::uint32_t id = top();
    auto it = memo_.find(key);
    if (it != memo_.end()) {
      it->second = id;
      return;
    }
    if (memo_.size() >= limits_.max_memo) fail("more than " + std::to_string(limits_.max_memo) + " memo entries");
    memo_.emplace(key, id);
  }
  void memo_get(std::uint32_t key) {
    auto it = memo_.find(key);
    if (it == memo_.end()) fail("memo entry " + std::to_string(key) + " is read before it is written");
    push(it->second);
  }

  // ---- the allowed globals ----
  std::uint32_t global(const std::string& module, const std::string& name) {
    if (module == "collections" && name == "OrderedDict")
      return make(Kind::global, 0, static_cast<std::int64_t>(Callable::ordered_dict));
    if (module == "torch._utils" && name == "_rebuild_tensor_v2")
      return make(Kind::global, 0, static_cast<std::int64_t>(Callable::rebuild_tensor_v2));
    if (module == "torch._utils" && name == "_rebuild_parameter")
      return make(Kind::global, 0, static_cast<std::int64_t>(Callable::rebuild_parameter));
    if (module == "torch") {
      static const std::pair<const char*, StorageType> storages[] = {{"FloatStorage", StorageType::float32},
                                                                     {"HalfStorage", StorageType::float16},
                                                                     {"BFloat16Storage", StorageType::bfloat16},
                                                                     {"DoubleStorage", StorageType::float64}};
      for (const auto& [storage, type] : storages)
        if (name == storage)
          return make(Kind::global, static_cast<std::uint32_t>(type),
                      static_cast<std::int64_t>(Callable::storage_type));
    }
    fail("pickle global '" + printable(module) + "." + printable(name) +
         "' is not allowed (a checkpoint may name only collections.OrderedDict, "
         "torch._utils._rebuild_tensor_v2, torch._utils._rebuild_parameter and "
         "torch.{Float,Half,BFloat16,Double}Storage); nothing was run");
  }
  static std::string printable(const std::string& s) { return io::detail::printable(s); }

  /// BINPERSID: ('storage', <storage type>, key, location, numel) names a storage entry.
  std::uint32_t persistent(std::uint32_t pid) {
    if (node(pid).kind != Kind::tuple) fail("a persistent id must be a tuple");
    const std::vector<std::uint32_t> f = containers_[node(pid).index];
    if (f.size() != 5 || node(f[0]).kind != Kind::string || strings_[node(f[0]).index] != "storage" ||
        node(f[1]).kind != Kind::global || static_cast<Callable>(node(f[1]).value) != Callable::storage_type ||
        node(f[2]).kind != Kind::string || node(f[3]).kind != Kind::string || node(f[4]).kind != Kind::integer ||
        node(f[4]).value < 0)
      fail("a persistent id must be ('storage', <storage type>, key, location, size)");
    StorageRef s;
    s.type = static_cast<StorageType>(node(f[1]).index);
    s.key = strings_[node(f[2]).index];
    s.numel = node(f[4]).value;
    auto it = storage_index_.find(s.key);
    if (it == storage_index_.end()) {
      it = storage_index_.emplace(s.key, result_.storages.size()).first;
      result_.storages.push_back(s);
    } else {
      const StorageRef& seen = result_.storages[it->second];
      if (seen.type != s.type || seen.numel != s.numel)
        fail("storage '" + printable(s.key) + "' is described twice with different types or sizes");
    }
    return make(Kind::storage, static_cast<std::uint32_t>(it->second));
  }

  std::uint32_t reduce(std::uint32_t callable, std::uint32_t args_id) {
    if (node(callable).kind != Kind::global)
      fail(std::string("REDUCE calls ") + kind_name(node(callable).kind) + ", not an allowed global");
    if (node(args_id).kind != Kind::tuple) fail("REDUCE's arguments are not a tuple");
    const std::vector<std::uint32_t> a = containers_[node(args_id).index];
    switch (static_cast<Callable>(node(callable).value)) {
      case Callable::ordered_dict:
        if (!a.empty()) fail("collections.OrderedDict is called with arguments");
        return container(Kind::dict, {});
      case Callable::rebuild_parameter:  // (tensor, requires_grad, backward_hooks)
        if (a.size() != 3 || node(a[0]).kind != Kind::tensor || node(a[1]).kind != Kind::boolean)
          fail("_rebuild_parameter needs (tensor, requires_grad, backward_hooks)");
        return a[0];
      case Callable::rebuild_tensor_v2: return rebuild_tensor(a);
      case Callable::storage_type: break;
    }
    fail("a storage type is called; checkpoints only name storage types in persistent ids");
  }

  /// _rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad, backward_hooks[, metadata])
  std::uint32_t rebuild_tensor(const std::vector<std::uint32_t>& a) {
    const auto integers = [&](std::uint32_t id, std::vector<std::int64_t>& out) {
      if (node(id).kind != Kind::tuple) return false;
      const std::vector<std::uint32_t>& items = containers_[node(id).index];
      if (items.size() > limits_.max_rank)
        fail("a tensor of " + std::to_string(items.size()) + " dimensions (at most " +
             std::to_string(limits_.max_rank) + ")");
      for (std::uint32_t item : items) {
        if (node(item).kind != Kind::integer) return false;
        out.push_back(node(item).value);
      }
      return true;
    };
    TensorRef t;
    if ((a.size() != 6 && a.size() != 7) || node(a[0]).kind != Kind::storage || node(a[1]).kind != Kind::integer ||
        !integers(a[2], t.sizes) || !integers(a[3], t.strides) || t.sizes.size() != t.strides.size() ||
        node(a[4]).kind != Kind::boolean)
      fail("_rebuild_tensor_v2 needs (storage, offset, sizes, strides, requires_grad, hooks[, metadata])");
    t.storage = node(a[0]).index;
    t.offset = node(a[1]).value;
    tensors_.push_back(std::move(t));
    return make(Kind::tensor, static_cast<std::uint32_t>(tensors_.size() - 1));
  }

  /// The state dict: string keys to tensors (other values are counted and skipped).
  StateDict finish(std::uint32_t root) {
    if (node(root).kind != Kind::dict)
      fail(std::string("the pickle holds ") + kind_name(node(root).kind) + ", not a state dict");
    const std::vector<std::uint32_t>& items = containers_[node(root).index];
    std::map<std::string, bool> seen;
    for (std::size_t i = 0; i + 1 < items.size(); i += 2) {
      const Node& key = node(items[i]);
      const Node& value = node(items[i + 1]);
      if (value.kind != Kind::tensor) {
        ++result_.other_values;
        continue;
      }
      if (key.kind != Kind::string) fail(std::string("a tensor is stored under ") + kind_name(key.kind) + " key");
      const std::string& name = strings_[key.index];
      if (!seen.emplace(name, true).second) fail("tensor '" + printable(name) + "' appears twice in the state dict");
      result_.tensors.emplace_back(name, tensors_[value.index]);
    }
    return std::move(result_);
  }

  const unsigned char* data_;
  std::size_t size_;
  std::string what_;
  Limits limits_;
  std::size_t pos_ = 0, op_pos_ = 0, items_ = 0;
  std::vector<Node> nodes_;
  std::vector<std::string> strings_;
  std::vector<std::vector<std::uint32_t>> containers_;
  std::vector<TensorRef> tensors_;
  std::vector<std::uint32_t> stack_;
  std::vector<std::size_t> marks_;
  std::unordered_map<std::uint32_t, std::uint32_t> memo_;
  std::map<std::string, std::size_t> storage_index_;
  StateDict result_;
};

}  // namespace detail

/// Runs the restricted unpickler over the `size` bytes at `data` (a torch.save data.pkl) and returns
/// the state dict's tensors. `what` names the pickle in messages (for example "model.bin: data.pkl").
inline StateDict read_torch_state_dict(const unsigned char* data, std::size_t size, const std::string& what,
                                       const Limits& limits = {}) {
  return detail::TorchUnpickler(data, size, what, limits).run();
}

}  // namespace tokenformer::io::pickle
