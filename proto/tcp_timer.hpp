// A hashed timing wheel (Varghese and Lauck) for one core's TCP timers: 1 ms ticks, 4096 slots,
// intrusive timers, O(1) arm and cancel. A deadline beyond the wheel's span stays in its slot
// and is skipped until its round comes. Driven by the caller's clock (TSC or a test's virtual
// one), so timer tests are exact and deterministic.
#pragma once

#include <cstdint>

namespace sluice::proto {

struct TcpTimer {
    TcpTimer* prev = nullptr;
    TcpTimer* next = nullptr;
    uint64_t expires = 0;  // tick
    void* owner = nullptr;
    bool armed() const { return prev != nullptr; }
};

class TcpTimerWheel {
  public:
    static constexpr unsigned kSlots = 4096;

    void init(uint64_t now_tick) {
        cur_ = now_tick;
        for (TcpTimer& s : slots_) s.prev = s.next = &s;
        due_.prev = due_.next = &due_;
    }
    uint64_t now() const { return cur_; }

    void arm(TcpTimer* t, uint64_t expires) {
        if (t->armed()) cancel(t);
        if (expires <= cur_) expires = cur_ + 1;
        t->expires = expires;
        link(&slots_[expires & (kSlots - 1)], t);
        ++armed_;
    }
    void cancel(TcpTimer* t) {
        if (!t->armed()) return;
        t->prev->next = t->next;
        t->next->prev = t->prev;
        t->prev = t->next = nullptr;
        --armed_;
    }
    unsigned armed() const { return armed_; }

    // Advances to `now_tick`, calling fire(t) for every timer that expired (disarmed first;
    // fire may re-arm it or arm others).
    template <class F>
    void advance(uint64_t now_tick, F&& fire) {
        while (cur_ < now_tick) {
            if (armed_ == 0) {  // nothing to fire: skip the empty span
                cur_ = now_tick;
                return;
            }
            ++cur_;
            TcpTimer& head = slots_[cur_ & (kSlots - 1)];
            // Move the expired ones to the due list first: fire() may arm timers in this very
            // slot, or arm or cancel other due timers (which takes them off the due list).
            for (TcpTimer* t = head.next; t != &head;) {
                TcpTimer* nx = t->next;
                if (t->expires <= cur_) {
                    cancel(t);
                    link(&due_, t);
                    ++armed_;  // still armed until fired (cancel() on the due list undoes it)
                }
                t = nx;
            }
            while (due_.next != &due_) {
                TcpTimer* t = due_.next;
                cancel(t);
                fire(t);
            }
        }
    }

  private:
    static void link(TcpTimer* head, TcpTimer* t) {
        t->next = head->next;
        t->prev = head;
        head->next->prev = t;
        head->next = t;
    }

    uint64_t cur_ = 0;
    unsigned armed_ = 0;
    TcpTimer due_;
    TcpTimer slots_[kSlots];
};

}  // namespace sluice::proto
