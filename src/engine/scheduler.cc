// Scheduler: the engine thread's loop of admit, step, stream.
#include "engine/scheduler.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <limits>
#include <numeric>

#include "base/clock.h"
#include "engine/stop_strings.h"

namespace meshlm::engine {

void Channel::Push(Event e) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    events_.push_back(std::move(e));
  }
  cv_.notify_one();
}

bool Channel::Pop(Event* e, int timeout_ms) {
  std::unique_lock<std::mutex> lock(mu_);
  if (!cv_.wait_for(lock, std::chrono::milliseconds(timeout_ms),
                    [&] { return !events_.empty(); })) {
    return false;
  }
  *e = std::move(events_.front());
  events_.pop_front();
  return true;
}

struct Scheduler::Running {
  uint64_t id = 0;
  GenRequest req;
  std::shared_ptr<Channel> channel;
  double arrived = 0;
  size_t limit = 0;       // tokens this request may generate
  bool started = false;   // the executor holds the sequence
  bool finished = false;  // release it at the next step
  int32_t last_token = -1;
  size_t generated = 0;
  std::unique_ptr<StreamDecoder> decoder;
  std::unique_ptr<StopMatcher> stop;
  // Grammar-constrained requests only: sampled here, from the step's full logits.
  std::unique_ptr<GrammarMatcher> matcher;
  std::unique_ptr<Sampler> sampler;
  std::vector<int32_t> history;  // prompt, then generated tokens
  bool forced_end = false;       // the grammar could not go on: end here
  std::vector<int32_t> fed;      // every token fed so far: what the cache holds
  size_t cached = 0;             // prompt tokens reused from the prefix cache
  // n > 1: choices after the first, admitted with it; each waits for the first's prompt
  // step and then starts from a copy of its cache.
  std::vector<std::unique_ptr<Running>> siblings;
  uint64_t first_id = 0;  // a sibling's first choice
  std::string tail;                    // lazy grammar: the output until its trigger
  std::vector<TokenLogprob> logprobs;  // sampled since the last event
  TokenLogprob next_logprob;           // of the token Advance is given next
};

Scheduler::Scheduler(Executor& executor, const Tokenizer* tokenizer, SchedulerStats& stats,
                     SchedulerOptions options)
    : executor_(executor),
      tokenizer_(tokenizer),
      stats_(stats),
      options_(std::move(options)),
      max_context_(executor.model().max_context()),
      vocab_size_(executor.model().config().vocab_size) {
  options_.max_running = std::max<size_t>(options_.max_running, 1);
  // For load and fault tests: stretch every step, so that a small test model's requests
  // last long enough to be interrupted.
  if (const char* d = std::getenv("MESHLM_STEP_DELAY_MS")) step_delay_s_ = std::atof(d) / 1e3;
  thread_ = std::thread([this] { Loop(); });
}

Scheduler::~Scheduler() { Stop(); }

void Scheduler::Stop() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable() && thread_.get_id() != std::this_thread::get_id()) thread_.join();
}

std::string Scheduler::broken_reason() const {
  std::lock_guard<std::mutex> lock(mu_);
  return broken_reason_;
}

Status Scheduler::Check(const GenRequest& r) const {
  if (r.prompt.empty()) return Error("the prompt is empty");
  if (r.prompt.size() >= max_context_) {
    return Error(
        "This model's maximum context length is {} tokens, but the prompt has {} tokens "
        "(no room left to generate). Shorten the prompt.",
        max_context_, r.prompt.size());
  }
  for (int32_t t : r.prompt) {
    if (t < 0 || static_cast<size_t>(t) >= vocab_size_) {
      return Error("prompt token id {} is outside the model's vocabulary of {}", t, vocab_size_);
    }
  }
  if (r.grammar && !tokenizer_) {
    return Error("structured output needs the model's tokenizer, and this model has none");
  }
  for (const auto& [t, bias] : r.sampling.logit_bias) {
    if (t >= 0 && static_cast<size_t>(t) >= vocab_size_) {
      return Error("logit_bias token id {} is outside the model's vocabulary of {}", t,
                   vocab_size_);
    }
  }
  return r.sampling.Validate();
}

std::unique_ptr<Scheduler::Running> Scheduler::NewRunning(GenRequest request) {
  auto r = std::make_unique<Running>();
  r->channel = std::make_shared<Channel>();
  r->arrived = NowSeconds();
  const size_t room =
      max_context_ > request.prompt.size() ? max_context_ - request.prompt.size() : 0;
  r->limit = request.max_tokens ? std::min(request.max_tokens, room) : room;
  r->req = std::move(request);
  if (tokenizer_) {
    r->decoder = std::make_unique<StreamDecoder>(*tokenizer_, !r->req.keep_special);
  }
  r->stop = std::make_unique<StopMatcher>(r->req.stop);
  if (r->req.grammar) {
    if (r->req.grammar_trigger.empty()) {
      r->matcher = std::make_unique<GrammarMatcher>(r->req.grammar);
    }
    r->sampler = std::make_unique<Sampler>(r->req.sampling);
    r->history = r->req.prompt;
  }
  return r;
}

std::shared_ptr<Channel> Scheduler::Submit(GenRequest request, SubmitError* error) {
  auto channels = SubmitN(std::move(request), 1, error);
  return channels.empty() ? nullptr : channels[0];
}

std::vector<std::shared_ptr<Channel>> Scheduler::SubmitN(GenRequest request, size_t n,
                                                         SubmitError* error) {
  n = std::max<size_t>(n, 1);
  std::vector<std::unique_ptr<Running>> choices;
  for (size_t i = 0; i < n; ++i) {
    GenRequest copy = request;
    copy.sampling.seed += i;
    choices.push_back(NewRunning(std::move(copy)));
  }
  std::vector<std::shared_ptr<Channel>> channels;
  for (const auto& c : choices) channels.push_back(c->channel);
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (stopping_) {
      *error = SubmitError::kStopping;
      return {};
    }
    if (broken_) {
      *error = SubmitError::kBroken;
      return {};
    }
    if (WaitingSeconds() > options_.degraded_after_seconds) {
      *error = SubmitError::kDegraded;
      return {};
    }
    if (queue_.size() >= options_.max_queued) {
      *error = SubmitError::kQueueFull;
      return {};
    }
    for (auto& c : choices) c->id = next_id_++;
    for (size_t i = 1; i < n; ++i) {
      choices[i]->first_id = choices[0]->id;
      choices[0]->siblings.push_back(std::move(choices[i]));
    }
    queue_.push_back(std::move(choices[0]));
    stats_.SetQueueDepth(static_cast<int64_t>(queue_.size()));
  }
  *error = SubmitError::kNone;
  cv_.notify_one();
  return channels;
}

void Scheduler::FailAll(const std::string& message) {
  std::deque<std::unique_ptr<Running>> queued;
  {
    std::lock_guard<std::mutex> lock(mu_);
    queued.swap(queue_);
    stats_.SetQueueDepth(0);
  }
  auto fail = [&](Running& r) {
    if (r.finished) return;
    r.finished = true;
    stats_.AddFailedRequest();
    Event e;
    e.kind = Event::Kind::kError;
    e.text = message;
    r.channel->Push(std::move(e));
  };
  for (auto& r : running_) fail(*r);
  for (auto& r : queued) {
    fail(*r);
    for (auto& s : r->siblings) fail(*s);
  }
  running_.clear();
  stats_.SetRunning(0);
}

bool Scheduler::Advance(Running& r, int32_t token) {
  ++r.generated;
  stats_.AddCompletionToken();
  if (r.generated == 1) stats_.ObserveTimeToFirstToken(NowSeconds() - r.arrived);
  r.last_token = token;
  // A grammar's end is final: ignore_eos does not reopen it.
  const bool is_eos =
      std::find(options_.eos_ids.begin(), options_.eos_ids.end(), token) != options_.eos_ids.end();
  const bool eos = r.forced_end || ((!r.req.ignore_eos || r.matcher) && is_eos);
  std::string text;
  if (!eos) {
    text = r.decoder ? r.decoder->Push(token)
                     : fmt::format("{}{}", r.generated == 1 ? "" : " ", token);
  }
  if (r.req.logprobs >= 0 && !eos) r.logprobs.push_back(std::move(r.next_logprob));
  std::string out = r.stop->Push(text);
  const bool done = eos || r.stop->stopped() || r.generated >= r.limit;
  if (done && !r.stop->stopped()) {
    if (r.decoder) out += r.stop->Push(r.decoder->Flush());
    out += r.stop->Flush();
  }
  if (!out.empty()) {
    Event e;
    e.text = std::move(out);
    e.logprobs = std::move(r.logprobs);
    r.logprobs.clear();
    r.channel->Push(std::move(e));
  }
  if (done) {
    Event e;
    e.kind = Event::Kind::kDone;
    e.logprobs = std::move(r.logprobs);
    r.logprobs.clear();
    e.finish_reason = eos || r.stop->stopped() ? "stop" : "length";
    e.prompt_tokens = r.req.prompt.size();
    e.completion_tokens = r.generated;
    e.cached_tokens = r.cached;
    r.channel->Push(std::move(e));
  }
  return done;
}

void Scheduler::Loop() {
  for (;;) {
    {
      std::unique_lock<std::mutex> lock(mu_);
      auto ready = [&] { return stopping_ || !queue_.empty() || !running_.empty(); };
      const bool probing = executor_.world_size() > 1 && options_.probe_seconds > 0;
      if (!probing) {
        cv_.wait(lock, ready);
      } else if (!cv_.wait_for(lock, std::chrono::duration<double>(options_.probe_seconds),
                               ready)) {
        // Idle: check that every rank still answers.
        lock.unlock();
        if (NowSeconds() - last_report_ >= options_.probe_seconds) {
          last_report_ = NowSeconds();
          if (Status st = GatherRankTimes(); !st.ok()) return Break(st);
        }
        continue;
      }
      if (stopping_) break;
      while (!queue_.empty() && running_.size() < options_.max_running) {
        std::unique_ptr<Running> r = std::move(queue_.front());
        queue_.pop_front();
        std::vector<std::unique_ptr<Running>> siblings = std::move(r->siblings);
        running_.push_back(std::move(r));
        for (auto& s : siblings) running_.push_back(std::move(s));
      }
      stats_.SetQueueDepth(static_cast<int64_t>(queue_.size()));
    }
    std::vector<SeqWork> work;
    std::vector<Running*> fed;
    for (uint64_t id : to_release_) {
      SeqWork w;
      w.id = id;
      w.release = true;
      work.push_back(std::move(w));
    }
    to_release_.clear();
    for (auto& r : running_) {
      if (r->channel->cancelled()) r->finished = true;
      SeqWork w;
      w.id = r->id;
      if (r->finished) {
        if (!r->started || Park(*r)) continue;
        w.release = true;
      } else if (!r->started) {
        // A later choice of n waits for the first choice's prompt step, then copies it.
        const Running* first = nullptr;
        if (r->first_id) {
          for (const auto& o : running_) {
            if (o && o->id == r->first_id) first = o.get();
          }
        }
        const bool copy = first && first->started && r->req.prompt.size() > 1;
        if (first && !first->started && !first->finished) continue;
        w.start = true;
        w.params = r->req.sampling;
        if (copy) {
          w.fork = true;
          w.fork_from = first->id;
          w.fork_len = static_cast<uint32_t>(r->req.prompt.size() - 1);
          w.tokens = {r->req.prompt.back()};
          r->fed.assign(r->req.prompt.begin(), r->req.prompt.end() - 1);
          r->cached = first->cached;
        } else {
          StartFromCache(*r, &w);
          stats_.AddPromptTokens(r->req.prompt.size());
        }
      } else {
        w.tokens = {r->last_token};
      }
      r->fed.insert(r->fed.end(), w.tokens.begin(), w.tokens.end());
      if (!w.tokens.empty()) fed.push_back(r.get());
      work.push_back(std::move(w));
    }
    // Finished sequences leave now; their release travels with this step.
    std::vector<std::unique_ptr<Running>> leaving;
    for (auto& r : running_) {
      if (r->finished) leaving.push_back(std::move(r));
    }
    std::erase(running_, nullptr);
    stats_.SetRunning(static_cast<int64_t>(running_.size()));
    if (work.empty()) continue;
    const double t0 = NowSeconds();
    // Constrained sequences and those asking for logprobs need their whole rows of
    // logits here, on rank 0.
    const bool rows = std::any_of(fed.begin(), fed.end(), [](const Running* r) {
      return r->matcher != nullptr || r->req.logprobs >= 0;
    });
    auto out = executor_.Step(std::move(work), rows ? &step_logits_ : nullptr);
    if (!out.ok()) return Break(out.status());
    if (rows) {
      for (size_t i = 0; i < fed.size(); ++i) {
        Running& r = *fed[i];
        const std::span<float> row(&step_logits_[i * vocab_size_], vocab_size_);
        std::vector<float> raw;
        if (r.req.logprobs >= 0 && r.matcher) raw.assign(row.begin(), row.end());
        if (r.matcher) (*out)[i] = SampleConstrained(r, row);
        if (r.req.logprobs >= 0) {
          r.next_logprob = Logprobs(raw.empty() ? std::span<const float>(row) : raw, (*out)[i],
                                    r.req.logprobs);
        }
      }
    }
    // A lazy grammar wakes (from the next step on) when its trigger shows in the output.
    for (size_t i = 0; i < fed.size(); ++i) {
      Running& r = *fed[i];
      if (r.req.grammar && !r.matcher && !r.req.grammar_trigger.empty()) {
        WatchTrigger(r, (*out)[i]);
      }
    }
    if (step_delay_s_ > 0) {
      std::this_thread::sleep_for(std::chrono::duration<double>(step_delay_s_));
    }
    stats_.ObserveStep(NowSeconds() - t0);
    for (size_t i = 0; i < fed.size(); ++i) {
      fed[i]->started = true;
      if (Advance(*fed[i], (*out)[i])) fed[i]->finished = true;
    }
    if (Status s = RecordTimes(); !s.ok()) return Break(s);
  }
  // The workers are stopped by whoever owns the job, after the server is gone.
  FailAll("[server] the server is shutting down");
}

void Scheduler::StartFromCache(Running& r, SeqWork* w) {
  const std::vector<int32_t>& prompt = r.req.prompt;
  // The last prompt token is always fed: its logits choose the first new token.
  const size_t limit = prompt.size() - 1;
  Parked* best = nullptr;
  size_t best_len = 0;
  for (Parked& p : parked_) {
    const size_t n = std::min(limit, p.tokens.size());
    size_t len = 0;
    while (len < n && p.tokens[len] == prompt[len]) ++len;
    if (len > best_len) best = &p, best_len = len;
  }
  if (!best || best_len == 0) {
    w->tokens = prompt;
    return;
  }
  best->used = NowSeconds();
  w->fork = true;
  w->fork_from = best->id;
  w->fork_len = static_cast<uint32_t>(best_len);
  w->tokens.assign(prompt.begin() + best_len, prompt.end());
  r.fed.assign(prompt.begin(), prompt.begin() + best_len);
  r.cached = best_len;
  stats_.AddCachedPromptTokens(best_len);
}

bool Scheduler::Park(Running& r) {
  const size_t per_token = std::max<size_t>(options_.kv_bytes_per_token, 1);
  if (options_.cache_bytes == 0 || r.fed.empty() || r.fed.size() * per_token > options_.cache_bytes) {
    return false;
  }
  // An entry whose tokens start the new one's is covered by it (the previous turn of the
  // same chat): drop it.
  for (size_t i = 0; i < parked_.size();) {
    const auto& t = parked_[i].tokens;
    if (t.size() <= r.fed.size() && std::equal(t.begin(), t.end(), r.fed.begin())) {
      to_release_.push_back(parked_[i].id);
      parked_tokens_ -= t.size();
      parked_.erase(parked_.begin() + i);
    } else {
      ++i;
    }
  }
  parked_.push_back({r.id, r.fed, NowSeconds()});
  parked_tokens_ += r.fed.size();
  while (parked_tokens_ * per_token > options_.cache_bytes) {
    auto lru = std::min_element(parked_.begin(), parked_.end(),
                                [](const Parked& a, const Parked& b) { return a.used < b.used; });
    to_release_.push_back(lru->id);
    parked_tokens_ -= lru->tokens.size();
    parked_.erase(lru);
  }
  stats_.SetCachedTokens(static_cast<int64_t>(parked_tokens_));
  return true;
}

void Scheduler::WatchTrigger(Running& r, int32_t token) {
  const TokenIndex& index = Index();
  r.history.push_back(token);
  if (token < 0 || static_cast<size_t>(token) >= index.vocab_size()) return;
  // Special tokens (a marker such as [TOOL_CALLS] may be one) count by their text.
  const std::string& bytes = index.bytes(token);
  r.tail += bytes.empty() ? tokenizer_->IdToToken(token) : bytes;
  const size_t at = r.tail.find(r.req.grammar_trigger);
  if (at == std::string::npos) {
    // Only the end can still begin the trigger.
    const size_t keep = r.req.grammar_trigger.size();
    if (r.tail.size() > 4 * keep) r.tail.erase(0, r.tail.size() - keep);
    return;
  }
  auto m = std::make_unique<GrammarMatcher>(r.req.grammar);
  const std::string from = r.tail.substr(at + r.req.trigger_skip);
  if (!from.empty() && !m->Accept(from)) {
    // What came with the trigger does not fit: leave the output free.
    r.req.grammar_trigger.clear();
    r.req.grammar.reset();
    return;
  }
  r.matcher = std::move(m);
}

TokenLogprob Scheduler::Logprobs(std::span<const float> row, int32_t token, int32_t top) {
  // log softmax: x - max - log(sum(exp(x - max))), in double for the sum.
  float max = -std::numeric_limits<float>::infinity();
  for (float x : row) max = std::max(max, x);
  double sum = 0;
  for (float x : row) sum += std::exp(static_cast<double>(x - max));
  const float log_z = max + static_cast<float>(std::log(sum));
  const TokenIndex* index = tokenizer_ ? &Index() : nullptr;
  auto entry = [&](int32_t id) {
    TokenLogprob t;
    t.id = id;
    t.logprob = row[id] - log_z;
    if (index && static_cast<size_t>(id) < index->vocab_size()) {
      t.bytes = index->bytes(id).empty() ? tokenizer_->IdToToken(id) : index->bytes(id);
    } else {
      t.bytes = std::to_string(id);
    }
    return t;
  };
  TokenLogprob out = entry(token);
  if (top > 0) {
    std::vector<int32_t> ids(row.size());
    std::iota(ids.begin(), ids.end(), 0);
    const size_t k = std::min<size_t>(static_cast<size_t>(top), ids.size());
    std::partial_sort(ids.begin(), ids.begin() + k, ids.end(),
                      [&](int32_t a, int32_t b) { return row[a] > row[b]; });
    for (size_t i = 0; i < k; ++i) out.top.push_back(entry(ids[i]));
  }
  return out;
}

const TokenIndex& Scheduler::Index() {
  if (!index_) index_ = std::make_unique<TokenIndex>(tokenizer_->TokenByteTable(), options_.eos_ids);
  return *index_;
}

int32_t Scheduler::SampleConstrained(Running& r, std::span<float> row) {
  const TokenIndex& index = Index();
  int32_t token = -1;
  if (r.matcher->ApplyMask(index, row)) {
    token = r.sampler->Sample(row, r.history,
                              std::span<const int32_t>(r.history).subspan(r.req.prompt.size()));
  }
  if (token < 0 || !r.matcher->AcceptToken(index, token)) {
    // Nothing the vocabulary can spell fits the grammar here: end the output.
    token = options_.eos_ids.empty() ? 0 : options_.eos_ids[0];
    r.forced_end = true;
  }
  r.history.push_back(token);
  return token;
}

void Scheduler::Break(const Status& why) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    broken_reason_ = why.message();
    broken_ = true;
  }
  FailAll("[server] the cluster failed: " + why.message());
}

Status Scheduler::RecordTimes() {
  const StepTimes mine = executor_.total_times();
  stats_.SetRankTimes(0, mine.compute_seconds, mine.comm_seconds);
  // The workers report their times at most once a second while requests run, and once
  // more when the last running request has finished (so an idle server sends nothing).
  const bool drained =
      std::all_of(running_.begin(), running_.end(), [](const auto& r) { return r->finished; }) &&
      QueueEmpty();
  if (executor_.world_size() == 1 || (NowSeconds() - last_report_ < 1.0 && !drained)) {
    return OkStatus();
  }
  last_report_ = NowSeconds();
  return GatherRankTimes();
}

Status Scheduler::GatherRankTimes() {
  waiting_since_ = NowSeconds();
  auto all = executor_.GatherTimes();
  waiting_since_ = 0;
  if (!all.ok()) return all.status();
  for (size_t r = 1; r < all->size(); ++r) {
    stats_.SetRankTimes(r, (*all)[r].compute_seconds, (*all)[r].comm_seconds);
  }
  return OkStatus();
}

double Scheduler::WaitingSeconds() const {
  const double since = waiting_since_;
  return since > 0 ? NowSeconds() - since : 0;
}

Health Scheduler::health() const {
  Health h;
  if (broken_) {
    h.state = Health::State::kBroken;
    h.reason = broken_reason();
    return h;
  }
  h.waiting_s = WaitingSeconds();
  if (h.waiting_s > options_.degraded_after_seconds) {
    h.state = Health::State::kDegraded;
    h.waiting_on = executor_.WaitingOn();
    const std::string who =
        h.waiting_on.empty() ? "the other ranks have"
        : h.waiting_on.size() == 1
            ? fmt::format("rank {} has", h.waiting_on[0])
            : fmt::format("ranks {} have", fmt::join(h.waiting_on, ", "));
    h.reason = fmt::format(
        "{} not answered for {:.1f} s: stalled, or a link is down (the job fails when the "
        "wait passes the collectives' deadline)",
        who, h.waiting_s);
  }
  return h;
}

}  // namespace meshlm::engine
