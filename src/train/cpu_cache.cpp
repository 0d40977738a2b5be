// A caching allocator for libtorch's CPU tensors, installed while gridmatch trains or
// embeds on the CPU (see cpu_cache.rs for what it is for and the measurements).
//
// libtorch allocates every CPU tensor through c10's CPU allocator, which calls
// posix_memalign / free. glibc serves blocks above its mmap threshold (at most 32 MiB)
// with a fresh mmap, so each step's largest activations are page-faulted and zeroed
// again; smaller ones stay in glibc's arenas, whose resident size creeps up over a long
// stream of batches. Between gm_cpu_cache_enter and the matching gm_cpu_cache_exit this
// allocator keeps freed blocks of 64 KiB and more in a pool by size class and hands them
// out again; smaller requests go to the allocator it replaced.
//
// Footprint: the pool holds at most as much as the largest live total reached, beyond
// the live blocks: a request that finds no block of its class and would take live +
// pooled bytes above twice that peak first frees pooled blocks of other classes (least
// recently used classes first). A loop whose batches repeat their sizes keeps every
// block it needs; sizes that keep changing cannot make the pool grow without bound.
//
// Pointers: every block is the pointer c10::alloc_cpu returned, and is recorded in a
// table while it is alive, so both c10's own deleter (free_cpu) and this allocator's
// deleter can free any block: pointers this allocator does not know (allocated before
// it was installed, or by the allocator it replaced) go to that allocator's deleter.
// On the last exit the allocator it replaced is put back, the pool is freed and the
// table forgotten (blocks still alive are freed by free_cpu when their tensors go).

#include <c10/core/Allocator.h>
#include <c10/core/CPUAllocator.h>
#include <c10/core/impl/alloc_cpu.h>

#include <cstddef>
#include <cstdint>
#include <map>
#include <mutex>
#include <new>
#include <unordered_map>
#include <vector>

namespace {

constexpr size_t kMinBytes = size_t(1) << 16;

// n rounded up to a multiple of 1/16 of its highest power of two (n >= kMinBytes).
size_t size_class(size_t n) {
  const size_t top = size_t(1) << (63 - __builtin_clzll(n));
  const size_t step = top / 16;
  return (n + step - 1) / step * step;
}

struct Class {
  std::vector<void*> blocks;
  uint64_t used = 0;  // tick of the last request of this class
};

struct State {
  std::mutex mu;
  int users = 0;
  bool open = false;
  c10::Allocator* replaced = nullptr;
  c10::DeleterFnPtr replaced_deleter = nullptr;
  std::map<size_t, Class> pool;
  std::unordered_map<void*, size_t> live;
  uint64_t tick = 0;
  uint64_t pooled_bytes = 0;
  uint64_t live_bytes = 0;       // bytes of the blocks in `live`
  uint64_t peak_live_bytes = 0;  // the largest live_bytes of the current window
  uint64_t hits = 0;
  uint64_t misses = 0;
  uint64_t evicted_bytes = 0;
};

State& state() {
  static State* s = new State();  // never destroyed: deleters may run at exit
  return *s;
}

// Frees pooled blocks, least recently used classes first, until `need` bytes are freed
// (or the pool is empty); the blocks are returned in `out` to be freed unlocked.
void evict(State& s, size_t need, std::vector<void*>& out) {
  size_t freed = 0;
  while (freed < need && s.pooled_bytes > 0) {
    auto oldest = s.pool.end();
    for (auto it = s.pool.begin(); it != s.pool.end(); ++it) {
      if (!it->second.blocks.empty() &&
          (oldest == s.pool.end() || it->second.used < oldest->second.used)) {
        oldest = it;
      }
    }
    if (oldest == s.pool.end()) break;
    while (!oldest->second.blocks.empty() && freed < need) {
      out.push_back(oldest->second.blocks.back());
      oldest->second.blocks.pop_back();
      freed += oldest->first;
      s.pooled_bytes -= oldest->first;
      s.evicted_bytes += oldest->first;
    }
  }
}

void release(void* p) {
  if (p == nullptr) return;
  State& s = state();
  c10::DeleterFnPtr other = nullptr;
  {
    std::lock_guard<std::mutex> g(s.mu);
    auto it = s.live.find(p);
    if (it != s.live.end()) {
      const size_t cls = it->second;
      s.live.erase(it);
      s.live_bytes -= cls;
      if (s.open) {
        try {
          s.pool[cls].blocks.push_back(p);
          s.pooled_bytes += cls;
          return;
        } catch (const std::bad_alloc&) {
          // No room to pool it: free it below.
        }
      }
    } else {
      other = s.replaced_deleter;
    }
  }
  if (other != nullptr) {
    other(p);
  } else {
    c10::free_cpu(p);
  }
}

struct CachingAllocator final : c10::Allocator {
  c10::DataPtr allocate(size_t n) override {
    State& s = state();
    c10::Allocator* replaced = nullptr;
    size_t cls = 0;
    void* p = nullptr;
    std::vector<void*> drop;
    {
      std::lock_guard<std::mutex> g(s.mu);
      if (n < kMinBytes || !s.open) {
        replaced = s.replaced;
      } else {
        cls = size_class(n);
        Class& c = s.pool[cls];
        c.used = ++s.tick;
        if (!c.blocks.empty()) {
          p = c.blocks.back();
          c.blocks.pop_back();
          s.pooled_bytes -= cls;
          s.hits += 1;
        } else {
          s.misses += 1;
          // Keep live + pooled within twice the largest live total (this block counted).
          const uint64_t live = s.live_bytes + cls;
          if (live > s.peak_live_bytes) s.peak_live_bytes = live;
          const uint64_t limit = 2 * s.peak_live_bytes;
          if (live + s.pooled_bytes > limit) evict(s, live + s.pooled_bytes - limit, drop);
        }
      }
    }
    for (void* d : drop) c10::free_cpu(d);
    if (replaced != nullptr) {
      // Small blocks (and any request after the last exit) keep the usual path; their
      // DataPtr carries the replaced allocator's own deleter.
      return replaced->allocate(n);
    }
    if (p == nullptr) p = c10::alloc_cpu(cls);  // throws c10::Error when out of memory
    {
      std::lock_guard<std::mutex> g(s.mu);
      s.live[p] = cls;
      s.live_bytes += cls;
      if (s.live_bytes > s.peak_live_bytes) s.peak_live_bytes = s.live_bytes;
    }
    return {p, p, &release, c10::Device(c10::DeviceType::CPU)};
  }

  c10::DeleterFnPtr raw_deleter() const override { return &release; }

  void copy_data(void* dest, const void* src, std::size_t count) const override {
    default_copy_data(dest, src, count);
  }
};

CachingAllocator& instance() {
  static CachingAllocator* a = new CachingAllocator();  // never destroyed
  return *a;
}

}  // namespace

extern "C" {

// Opens (or joins) the caching window. Returns 1 when the allocator is installed, 0 when
// libtorch's CPU allocator is not c10's default one (someone else replaced it: it is
// left alone) and -1 on an internal failure.
int gm_cpu_cache_enter() noexcept {
  try {
    State& s = state();
    std::lock_guard<std::mutex> g(s.mu);
    if (s.users++ == 0) {
      c10::Allocator* current = c10::GetCPUAllocator();
      s.open = false;
      if (current == c10::GetDefaultCPUAllocator() && current->raw_deleter() != nullptr) {
        s.replaced = current;
        s.replaced_deleter = current->raw_deleter();
        c10::SetCPUAllocator(&instance(), 0);
        s.open = c10::GetCPUAllocator() == &instance();
      }
    }
    return s.open ? 1 : 0;
  } catch (...) {
    return -1;
  }
}

// Leaves the window; the last one out puts the replaced allocator back and frees the
// pool. Returns the bytes that were pooled when it was called.
uint64_t gm_cpu_cache_exit() noexcept {
  State& s = state();
  std::vector<void*> drop;
  uint64_t pooled = 0;
  {
    std::lock_guard<std::mutex> g(s.mu);
    pooled = s.pooled_bytes;
    if (s.users > 0 && --s.users == 0) {
      if (s.open && c10::GetCPUAllocator() == &instance()) {
        c10::SetCPUAllocator(s.replaced, 0);
      }
      s.open = false;
      try {
        for (auto& kv : s.pool) drop.insert(drop.end(), kv.second.blocks.begin(), kv.second.blocks.end());
      } catch (...) {
        // Could not list them: they stay allocated (a leak, never a double free).
        drop.clear();
      }
      s.pool.clear();
      s.live.clear();
      s.pooled_bytes = 0;
      s.live_bytes = 0;
      s.peak_live_bytes = 0;
    }
  }
  for (void* p : drop) c10::free_cpu(p);
  return pooled;
}

// Counters since the process started: out[0] windows open now, out[1] bytes pooled now,
// out[2] requests served from the pool, out[3] requests that allocated, out[4] bytes
// freed from the pool to make room, out[5] blocks alive that the allocator knows.
void gm_cpu_cache_stats(uint64_t* out) noexcept {
  State& s = state();
  std::lock_guard<std::mutex> g(s.mu);
  out[0] = static_cast<uint64_t>(s.users);
  out[1] = s.pooled_bytes;
  out[2] = s.hits;
  out[3] = s.misses;
  out[4] = s.evicted_bytes;
  out[5] = s.live.size();
}

}  // extern "C"
