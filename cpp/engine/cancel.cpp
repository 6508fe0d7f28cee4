#include "engine/cancel.h"

#include "engine/errors.h"

namespace deepshop {
namespace {
thread_local CancelToken* t_current = nullptr;
}  // namespace

void CancelToken::cancel() {
  std::lock_guard<std::mutex> lock(mutex_);
  if (cancelled_.exchange(true, std::memory_order_acq_rel)) return;
  // Under the lock: a guard cannot remove (and its run free) a stopper while it is being called.
  for (auto& stop : stoppers_) stop();
}

CancelScope::CancelScope(CancelToken& token) : previous_(t_current) { t_current = &token; }
CancelScope::~CancelScope() { t_current = previous_; }

CancelToken* current_cancel_token() { return t_current; }
bool cancel_requested() { return t_current && t_current->cancelled(); }

CancelGuard::CancelGuard(std::function<void()> stop) : token_(t_current) {
  if (!token_) return;
  std::lock_guard<std::mutex> lock(token_->mutex_);
  if (token_->cancelled()) throw Cancelled("run cancelled");
  entry_ = token_->stoppers_.insert(token_->stoppers_.end(), std::move(stop));
}

CancelGuard::~CancelGuard() {
  if (!token_) return;
  std::lock_guard<std::mutex> lock(token_->mutex_);
  token_->stoppers_.erase(entry_);
}

}  // namespace deepshop
