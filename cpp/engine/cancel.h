#pragma once
// Stopping a run from another thread, within a network call, not only between tiles.
//
// A CancelToken is made for one call of the engine (by the bindings, whose watcher sets it on
// Ctrl-C) and made the current thread's with a CancelScope.  Whatever runs a network on that
// thread registers, for the length of the run, how to stop it (CancelGuard: ONNX Runtime's
// RunOptions terminate flag, OpenVINO's infer-request cancel); cancel() calls each registered
// stopper once and makes later checks (cancel_requested(), the progress callback) say so.  A run
// stopped this way throws Cancelled.  Without a scope nothing is registered and nothing changes.
#include <atomic>
#include <functional>
#include <list>
#include <mutex>

namespace deepshop {

class CancelToken {
 public:
  CancelToken() = default;
  CancelToken(const CancelToken&) = delete;
  CancelToken& operator=(const CancelToken&) = delete;

  // Thread-safe; stops the registered runs (each stopper is called at most once).
  void cancel();
  bool cancelled() const { return cancelled_.load(std::memory_order_acquire); }

 private:
  friend class CancelGuard;
  using Stoppers = std::list<std::function<void()>>;
  std::atomic<bool> cancelled_{false};
  std::mutex mutex_;
  Stoppers stoppers_;
};

// Makes `token` the current thread's for its lifetime (scopes nest; the innermost counts).
class CancelScope {
 public:
  explicit CancelScope(CancelToken& token);
  ~CancelScope();
  CancelScope(const CancelScope&) = delete;
  CancelScope& operator=(const CancelScope&) = delete;

 private:
  CancelToken* previous_;
};

// The current thread's token (nullptr outside any CancelScope).
CancelToken* current_cancel_token();
// Whether the current thread's token has been cancelled.
bool cancel_requested();

// Registers `stop` with the current thread's token for the guard's lifetime (a network run);
// throws Cancelled at once when the token is cancelled already.  The stopper is never called
// after the guard is gone.
class CancelGuard {
 public:
  explicit CancelGuard(std::function<void()> stop);
  ~CancelGuard();
  CancelGuard(const CancelGuard&) = delete;
  CancelGuard& operator=(const CancelGuard&) = delete;

 private:
  CancelToken* token_;
  CancelToken::Stoppers::iterator entry_;
};

}  // namespace deepshop
