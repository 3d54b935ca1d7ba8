// A restricted unpickler for torch.save archives. Written from the pickle protocol's documentation
// (Python's pickletools lists the opcodes) and torch's archive layout: a zip holding
// <name>/data.pkl (the pickled object, protocol 2) and <name>/data/<key> (the raw storages, named
// by persistent ids ('storage', torch.<Type>Storage, key, location, numel)).
#include "torch_checkpoint.h"

#include <caffe2/serialize/inline_container.h>
#include <fmt/format.h>

#include <cstring>
#include <deque>
#include <filesystem>
#include <fstream>
#include <map>
#include <unordered_map>

#include "sagitta/segmentation/error.h"

namespace sagitta::segmentation {
namespace {

// Limits far above any real checkpoint (an nnU-Net data.pkl is well under a megabyte).
constexpr std::size_t kMaxObjects = 4'000'000;
constexpr std::size_t kMaxPickleBytes = std::size_t(512) << 20;
constexpr int kMaxTensorDims = 8;

struct Obj {
  enum class Kind { None, Bool, Int, Float, Str, Bytes, List, Tuple, Dict, Global, Storage, Tensor, Opaque };
  Kind kind = Kind::Opaque;
  bool flag = false;
  int64_t i = 0;
  double f = 0;
  std::string s, s2;                       // Str/Bytes; Global: module, name; Storage: key, type name
  std::vector<Obj*> items;                 // List, Tuple
  std::vector<std::pair<Obj*, Obj*>> dict;  // Dict, in insertion order
  Obj* storage = nullptr;                  // Tensor
  std::vector<int64_t> sizes, strides;     // Tensor (i = storage offset)
};
using Kind = Obj::Kind;

class Unpickler {
public:
  Unpickler(const char* data, std::size_t size) : p_(data), end_(data + size) {}

  Obj* run() {
    while (true) {
      const auto op = static_cast<unsigned char>(byte());
      if (op == '.') {  // STOP
        if (stack_.size() != 1 || !marks_.empty()) fail("the pickle ends with an unbalanced stack");
        return stack_.back();
      }
      step(op);
    }
  }

private:
  const char* p_;
  const char* end_;
  std::deque<Obj> arena_;  // owns every object; references are plain pointers (cycles are harmless)
  std::vector<Obj*> stack_;
  std::vector<std::size_t> marks_;
  std::unordered_map<uint32_t, Obj*> memo_;

  [[noreturn]] void fail(const std::string& what) const { throw SegmentationError("damaged checkpoint: " + what); }

  Obj* make(Kind k) {
    if (arena_.size() >= kMaxObjects) fail("too many objects in the pickle");
    arena_.emplace_back();
    arena_.back().kind = k;
    return &arena_.back();
  }
  const char* take(std::size_t n) {
    if (std::size_t(end_ - p_) < n) fail("the pickle is truncated");
    const char* at = p_;
    p_ += n;
    return at;
  }
  char byte() { return *take(1); }
  uint64_t little(std::size_t n) {
    const auto* b = reinterpret_cast<const unsigned char*>(take(n));
    uint64_t v = 0;
    for (std::size_t k = 0; k < n; ++k) v |= uint64_t(b[k]) << (8 * k);
    return v;
  }
  std::string line() {
    std::string s;
    while (true) {
      const char c = byte();
      if (c == '\n') return s;
      if (s.size() > 4096) fail("an overlong GLOBAL name");
      s += c;
    }
  }
  void push(Obj* o) {
    if (stack_.size() >= kMaxObjects) fail("the pickle's stack grows without bound");
    stack_.push_back(o);
  }
  Obj* pop() {
    if (stack_.empty() || (!marks_.empty() && stack_.size() <= marks_.back())) fail("stack underflow");
    Obj* o = stack_.back();
    stack_.pop_back();
    return o;
  }
  Obj* top() {
    if (stack_.empty() || (!marks_.empty() && stack_.size() <= marks_.back())) fail("stack underflow");
    return stack_.back();
  }
  std::vector<Obj*> pop_mark() {
    if (marks_.empty()) fail("missing MARK");
    const std::size_t m = marks_.back();
    marks_.pop_back();
    std::vector<Obj*> items(stack_.begin() + std::ptrdiff_t(m), stack_.end());
    stack_.resize(m);
    return items;
  }
  Obj* str(Kind k, std::size_t n) {
    Obj* o = make(k);
    o->s.assign(take(n), n);
    return o;
  }
  Obj* integer(int64_t v) {
    Obj* o = make(Kind::Int);
    o->i = v;
    return o;
  }
  Obj* tuple(std::vector<Obj*> items) {
    Obj* o = make(Kind::Tuple);
    o->items = std::move(items);
    return o;
  }
  void memo_put(uint64_t index) {
    if (memo_.size() >= kMaxObjects) fail("too many memo entries");
    memo_[uint32_t(index)] = top();
  }
  void memo_get(uint64_t index) {
    const auto it = memo_.find(uint32_t(index));
    if (it == memo_.end()) fail(fmt::format("memo entry {} is used before it is set", index));
    push(it->second);
  }
  void set_items(Obj* target, const std::vector<Obj*>& kv) {
    if (kv.size() % 2) fail("SETITEMS with an odd number of values");
    if (target->kind == Kind::Opaque) return;  // e.g. a defaultdict: not needed, left alone
    if (target->kind != Kind::Dict) fail("SETITEM on something that is not a dict");
    for (std::size_t k = 0; k < kv.size(); k += 2) target->dict.emplace_back(kv[k], kv[k + 1]);
  }
  void append(Obj* target, const std::vector<Obj*>& values) {
    if (target->kind == Kind::Opaque) return;
    if (target->kind != Kind::List) fail("APPEND on something that is not a list");
    target->items.insert(target->items.end(), values.begin(), values.end());
  }

  Obj* reduce(Obj* callable, Obj* args) {
    if (callable->kind != Kind::Global || args->kind != Kind::Tuple) return make(Kind::Opaque);
    const std::string name = callable->s + "." + callable->s2;
    const auto& a = args->items;
    if (name == "collections.OrderedDict" && a.empty()) return make(Kind::Dict);
    if ((name == "torch._utils._rebuild_parameter" || name == "torch._utils._rebuild_parameter_with_state") &&
        !a.empty())
      return a[0];
    if (name == "torch._utils._rebuild_tensor_v2") {
      if (a.size() < 4 || a[0]->kind != Kind::Storage || a[1]->kind != Kind::Int || a[2]->kind != Kind::Tuple ||
          a[3]->kind != Kind::Tuple)
        fail("a tensor with unexpected rebuild arguments");
      Obj* t = make(Kind::Tensor);
      t->storage = a[0];
      t->i = a[1]->i;
      for (Obj* v : a[2]->items) {
        if (v->kind != Kind::Int) fail("a tensor size that is not an integer");
        t->sizes.push_back(v->i);
      }
      for (Obj* v : a[3]->items) {
        if (v->kind != Kind::Int) fail("a tensor stride that is not an integer");
        t->strides.push_back(v->i);
      }
      return t;
    }
    return make(Kind::Opaque);  // numpy scalars, torch.device, _codecs.encode...: never evaluated
  }

  Obj* persistent(Obj* pid) {
    if (pid->kind != Kind::Tuple || pid->items.size() < 5 || pid->items[0]->kind != Kind::Str ||
        pid->items[0]->s != "storage" || pid->items[1]->kind != Kind::Global || pid->items[2]->kind != Kind::Str)
      fail("an unsupported persistent id (not a tensor storage)");
    Obj* o = make(Kind::Storage);
    o->s = pid->items[2]->s;
    o->s2 = pid->items[1]->s2;
    if (pid->items[1]->s != "torch") fail("a storage of unknown type " + pid->items[1]->s + "." + pid->items[1]->s2);
    return o;
  }

  void step(unsigned char op) {
    switch (op) {
      case 0x80: byte(); break;                          // PROTO
      case 0x95: take(8); break;                         // FRAME
      case '}': push(make(Kind::Dict)); break;           // EMPTY_DICT
      case ']': push(make(Kind::List)); break;           // EMPTY_LIST
      case ')': push(tuple({})); break;                  // EMPTY_TUPLE
      case '(': marks_.push_back(stack_.size()); break;  // MARK
      case '0': pop(); break;                            // POP
      case '1': pop_mark(); break;                       // POP_MARK
      case '2': push(top()); break;                      // DUP
      case 'N': push(make(Kind::None)); break;
      case 0x88: case 0x89: {                            // NEWTRUE, NEWFALSE
        Obj* o = make(Kind::Bool);
        o->flag = op == 0x88;
        push(o);
        break;
      }
      case 'J': push(integer(int32_t(uint32_t(little(4))))); break;  // BININT
      case 'K': push(integer(int64_t(little(1)))); break;            // BININT1
      case 'M': push(integer(int64_t(little(2)))); break;            // BININT2
      case 0x8a: case 0x8b: {                                        // LONG1, LONG4
        const uint64_t n = op == 0x8a ? little(1) : little(4);
        if (n > 8) {
          take(n);
          push(make(Kind::Opaque));  // a big integer: nothing Sagitta reads
          break;
        }
        uint64_t v = n ? little(n) : 0;
        if (n && n < 8 && (v >> (8 * n - 1)) & 1) v |= ~uint64_t(0) << (8 * n);  // sign extension
        push(integer(int64_t(v)));
        break;
      }
      case 'G': {  // BINFLOAT, big-endian
        const auto* b = reinterpret_cast<const unsigned char*>(take(8));
        uint64_t bits = 0;
        for (int k = 0; k < 8; ++k) bits = (bits << 8) | b[k];
        Obj* o = make(Kind::Float);
        std::memcpy(&o->f, &bits, 8);
        push(o);
        break;
      }
      case 'X': push(str(Kind::Str, little(4))); break;     // BINUNICODE
      case 0x8c: push(str(Kind::Str, little(1))); break;    // SHORT_BINUNICODE
      case 0x8d: push(str(Kind::Str, little(8))); break;    // BINUNICODE8
      case 'T': push(str(Kind::Bytes, little(4))); break;   // BINSTRING
      case 'U': push(str(Kind::Bytes, little(1))); break;   // SHORT_BINSTRING
      case 'B': push(str(Kind::Bytes, little(4))); break;   // BINBYTES
      case 'C': push(str(Kind::Bytes, little(1))); break;   // SHORT_BINBYTES
      case 0x8e: push(str(Kind::Bytes, little(8))); break;  // BINBYTES8
      case 'c': {                                           // GLOBAL
        Obj* o = make(Kind::Global);
        o->s = line();
        o->s2 = line();
        push(o);
        break;
      }
      case 0x93: {  // STACK_GLOBAL
        Obj* name = pop();
        Obj* module = pop();
        if (name->kind != Kind::Str || module->kind != Kind::Str) fail("STACK_GLOBAL without strings");
        Obj* o = make(Kind::Global);
        o->s = module->s;
        o->s2 = name->s;
        push(o);
        break;
      }
      case 'q': memo_put(little(1)); break;          // BINPUT
      case 'r': memo_put(little(4)); break;          // LONG_BINPUT
      case 0x94: memo_put(memo_.size()); break;      // MEMOIZE
      case 'h': memo_get(little(1)); break;          // BINGET
      case 'j': memo_get(little(4)); break;          // LONG_BINGET
      case 't': push(tuple(pop_mark())); break;      // TUPLE
      case 0x85: { Obj* a = pop(); push(tuple({a})); break; }
      case 0x86: { Obj* b = pop(); Obj* a = pop(); push(tuple({a, b})); break; }
      case 0x87: { Obj* c = pop(); Obj* b = pop(); Obj* a = pop(); push(tuple({a, b, c})); break; }
      case 'l': { Obj* o = make(Kind::List); o->items = pop_mark(); push(o); break; }  // LIST
      case 'd': { Obj* o = make(Kind::Dict); set_items(o, pop_mark()); push(o); break; }  // DICT
      case 's': { Obj* v = pop(); Obj* k = pop(); set_items(top(), {k, v}); break; }   // SETITEM
      case 'u': { auto kv = pop_mark(); set_items(top(), kv); break; }                 // SETITEMS
      case 'a': { Obj* v = pop(); append(top(), {v}); break; }                         // APPEND
      case 'e': { auto vs = pop_mark(); append(top(), vs); break; }                    // APPENDS
      case 0x8f: push(make(Kind::Opaque)); break;                                      // EMPTY_SET
      case 0x90: pop_mark(); break;                                                    // ADDITEMS
      case 0x91: pop_mark(); push(make(Kind::Opaque)); break;                          // FROZENSET
      case 'R': { Obj* args = pop(); Obj* callable = pop(); push(reduce(callable, args)); break; }
      case 0x81: { pop(); pop(); push(make(Kind::Opaque)); break; }                    // NEWOBJ
      case 0x92: { pop(); pop(); pop(); push(make(Kind::Opaque)); break; }             // NEWOBJ_EX
      case 'b': { pop(); top(); break; }  // BUILD: the state of opaque objects / OrderedDict metadata
      case 'Q': push(persistent(pop())); break;  // BINPERSID
      default: fail(fmt::format("unsupported pickle opcode 0x{:02x}", op));
    }
  }
};

c10::ScalarType storage_dtype(const std::string& type) {
  static const std::map<std::string, c10::ScalarType> types = {
      {"FloatStorage", c10::kFloat}, {"DoubleStorage", c10::kDouble}, {"HalfStorage", c10::kHalf},
      {"BFloat16Storage", c10::kBFloat16}, {"LongStorage", c10::kLong}, {"IntStorage", c10::kInt},
      {"ShortStorage", c10::kShort}, {"CharStorage", c10::kChar}, {"ByteStorage", c10::kByte},
      {"BoolStorage", c10::kBool}};
  const auto it = types.find(type);
  if (it == types.end()) throw SegmentationError("damaged checkpoint: a tensor storage of unsupported type " + type);
  return it->second;
}

const Obj* lookup(const Obj* dict, const std::string& key) {
  for (const auto& [k, v] : dict->dict)
    if (k->kind == Kind::Str && k->s == key) return v;
  return nullptr;
}

}  // namespace

NNUNetCheckpoint read_nnunet_checkpoint(const std::string& path) {
  auto fail = [&](const std::string& what) -> SegmentationError { return SegmentationError(path + ": " + what); };
  {
    std::error_code ec;
    if (!std::filesystem::is_regular_file(path, ec)) throw fail("no such checkpoint file");
    std::ifstream in(path, std::ios::binary);
    char magic[4] = {};
    in.read(magic, 4);
    if (!in) throw fail("not a PyTorch checkpoint (too short)");
    if (static_cast<unsigned char>(magic[0]) == 0x80)
      throw fail("a legacy (pre-1.6, non-zip) torch.save file; re-save it with a current PyTorch");
    if (std::memcmp(magic, "PK\x03\x04", 4) != 0) throw fail("not a PyTorch checkpoint (not a zip archive)");
  }
  try {
    caffe2::serialize::PyTorchStreamReader reader(path);
    auto [pkl, pkl_size] = reader.getRecord("data.pkl");
    if (pkl_size > kMaxPickleBytes) throw fail("data.pkl is implausibly large");
    Unpickler unpickler(static_cast<const char*>(pkl.get()), pkl_size);
    const Obj* root = unpickler.run();
    if (root->kind != Kind::Dict) throw fail("not an nnU-Net checkpoint (the top level is not a dict)");

    NNUNetCheckpoint out;
    const Obj* weights = lookup(root, "network_weights");
    if (!weights || weights->kind != Kind::Dict) throw fail("not an nnU-Net checkpoint (no network_weights dict)");
    std::map<std::string, std::pair<at::DataPtr, std::size_t>> storages;
    // nnU-Net's state dicts list most tensors three times (conv / all_modules.0 / decoder.encoder...):
    // views of the same storage, converted once.
    std::map<std::string, torch::Tensor> converted;
    for (const auto& [k, v] : weights->dict) {
      if (k->kind != Kind::Str) throw fail("network_weights has a key that is not a string");
      if (v->kind != Kind::Tensor) throw fail("network_weights['" + k->s + "'] is not a tensor");
      const std::string view = fmt::format("{}|{}|{}|{}|{}", v->storage->s, v->storage->s2, v->i,
                                           fmt::join(v->sizes, ","), fmt::join(v->strides, ","));
      if (const auto done = converted.find(view); done != converted.end()) {
        out.network_weights.emplace_back(k->s, done->second);
        continue;
      }
      const c10::ScalarType dtype = storage_dtype(v->storage->s2);
      auto it = storages.find(v->storage->s);
      if (it == storages.end()) {
        if (v->storage->s.size() > 256) throw fail("an overlong storage name");
        auto [data, bytes] = reader.getRecord("data/" + v->storage->s);
        it = storages.emplace(v->storage->s, std::make_pair(std::move(data), bytes)).first;
      }
      const int64_t element = int64_t(c10::elementSize(dtype));
      const int64_t available = int64_t(it->second.second) / element;
      if (v->sizes.size() != v->strides.size() || v->sizes.size() > std::size_t(kMaxTensorDims) || v->i < 0)
        throw fail("network_weights['" + k->s + "'] has inconsistent sizes and strides");
      // The highest element the view touches must lie inside the storage.
      __int128 last = v->i;
      bool empty = false;
      for (std::size_t d = 0; d < v->sizes.size(); ++d) {
        const int64_t size = v->sizes[d], stride = v->strides[d];
        if (size < 0 || stride < 0 || size > available + 1 || stride > available + 1)
          throw fail("network_weights['" + k->s + "'] has sizes or strides outside its storage");
        if (size == 0) empty = true;
        else last += __int128(size - 1) * stride;
        if (last > available) break;
      }
      if (!empty && last >= available)
        throw fail("network_weights['" + k->s + "'] reaches beyond its storage (truncated or damaged file)");
      torch::Tensor t;
      if (empty) {
        t = torch::zeros(v->sizes, torch::kFloat);
      } else {
        auto base = torch::from_blob(it->second.first.get(), {available}, torch::TensorOptions().dtype(dtype));
        t = base.as_strided(v->sizes, v->strides, v->i).to(torch::kFloat).contiguous().clone();
      }
      converted.emplace(view, t);
      out.network_weights.emplace_back(k->s, std::move(t));
    }
    if (const Obj* axes = lookup(root, "inference_allowed_mirroring_axes"); axes && axes->kind != Kind::None) {
      if (axes->kind != Kind::Tuple && axes->kind != Kind::List)
        throw fail("inference_allowed_mirroring_axes is neither a tuple nor None");
      std::vector<int> v;
      for (const Obj* a : axes->items) {
        if (a->kind != Kind::Int || a->i < 0 || a->i > 2) throw fail("inference_allowed_mirroring_axes holds a value other than 0, 1, 2");
        v.push_back(int(a->i));
      }
      out.mirroring_axes = v;
    }
    if (const Obj* name = lookup(root, "trainer_name"); name && name->kind == Kind::Str) out.trainer_name = name->s;
    return out;
  } catch (const SegmentationError& e) {
    const std::string what = e.what();
    if (what.rfind(path + ":", 0) == 0) throw;
    throw fail(what);
  } catch (const c10::Error& e) {
    std::string what = e.what_without_backtrace();
    what = what.substr(0, what.find('\n'));
    throw fail("not a readable torch.save archive (" + what + ")");
  } catch (const std::bad_alloc&) {
    throw fail("not a readable torch.save archive (it declares more data than fits in memory)");
  }
}

}  // namespace sagitta::segmentation
