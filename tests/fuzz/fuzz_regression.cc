// fuzz_regression: every fuzz target of tests/fuzz/ in one binary, for ctest (fuzz.regression).
//
// For each target it replays the committed corpus (tests/fuzz/corpus/<target>/*), then a
// deterministic mutation loop: a fixed-seed PRNG stacks a few byte-level mutations (bit flips,
// interesting bytes, protocol tokens, erased, duplicated and spliced spans) onto corpus inputs.
// Same binary, same corpus: same inputs, so a failure here always reproduces. It is no substitute
// for coverage-guided fuzzing (tests/fuzz/run_fuzz.sh), but it keeps every target compiling and
// its invariants holding in every build, including plain g++ ones.
//
// Usage: fuzz_regression [--corpus DIR] [--iterations N] [--seed S] [TARGET...]
// When a target aborts, the input is written to fuzz-regression-crash-<target>.bin in the working
// directory first (add it to the corpus once fixed).
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

#define SG_FUZZ_DECLARE(name) extern "C" int fuzz_##name(const uint8_t* data, size_t size);
SG_FUZZ_DECLARE(request_parser)
SG_FUZZ_DECLARE(response_parser)
SG_FUZZ_DECLARE(cookie)
SG_FUZZ_DECLARE(config)
SG_FUZZ_DECLARE(session_attributes)
SG_FUZZ_DECLARE(snapshot)
SG_FUZZ_DECLARE(memory_store)
SG_FUZZ_DECLARE(client_side)
SG_FUZZ_DECLARE(upstream_response)
SG_FUZZ_DECLARE(redis_record)
SG_FUZZ_DECLARE(h2_frames)
SG_FUZZ_DECLARE(h2_client_side)
SG_FUZZ_DECLARE(form_field)
#undef SG_FUZZ_DECLARE

namespace {

using Entry = int (*)(const uint8_t*, size_t);

struct Target {
  const char* name;
  Entry entry;
};

constexpr Target kTargets[] = {
    {"request_parser", &fuzz_request_parser},
    {"response_parser", &fuzz_response_parser},
    {"cookie", &fuzz_cookie},
    {"config", &fuzz_config},
    {"session_attributes", &fuzz_session_attributes},
    {"snapshot", &fuzz_snapshot},
    {"memory_store", &fuzz_memory_store},
    {"client_side", &fuzz_client_side},
    {"upstream_response", &fuzz_upstream_response},
    {"redis_record", &fuzz_redis_record},
    {"h2_frames", &fuzz_h2_frames},
    {"h2_client_side", &fuzz_h2_client_side},
    {"form_field", &fuzz_form_field},
};

constexpr size_t kMaxInputBytes = 4096;  // mutations stop growing an input past this

// Protocol pieces the mutator splices in: framing, smuggling and cookie edge cases, TOML syntax.
constexpr std::string_view kTokens[] = {
    "\r\n",
    "\r\n\r\n",
    "\n",
    " ",
    "\t",
    ":",
    ";",
    "=",
    ",",
    "\"",
    "GET / HTTP/1.1\r\n",
    "POST /a HTTP/1.1\r\n",
    "HTTP/1.1 200 OK\r\n",
    "HTTP/1.0",
    "Host: example.com\r\n",
    "Content-Length: 5\r\n",
    "Content-Length: 0\r\n",
    "Transfer-Encoding: chunked\r\n",
    "Transfer-Encoding: gzip, chunked\r\n",
    "5;ext=\"v\"\r\nhello\r\n",
    "0\r\n\r\n",
    "Connection: keep-alive, X-Session-Id\r\n",
    "Connection: upgrade\r\nUpgrade: websocket\r\n",
    "X-Session-Id: forged\r\n",
    "X_Session_User: forged\r\n",
    "x-session-set-role: admin\r\n",
    "Cookie: session_id=",
    "Set-Cookie: session_id=x; Path=/\r\n",
    "session_id=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
    "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
    "[server]\n",
    "[session]\n",
    "[[tls.certificates]]\n",
    "listen = [\"127.0.0.1:0\"]\n",
    "cookie_name = \"",
    "timeout = \"1h30m\"\n",
    "max_header_bytes = \"16KiB\"\n",
    "${HOME}",
    "$${",
    "\"\"\"",
    "'''",
    "\\u0000",
    "id:",
    "user_id: 42\n",
};

constexpr uint8_t kBytes[] = {0,   '\r', '\n', ' ',  '\t', ':',  ';',  '=', '"', '_',  '-',
                              '0', '9',  'f',  'A',  '$',  '{',  '}',  '[', ']', '#',  '\\',
                              ',', '/',  '@',  0x7f, 0x80, 0xff, 0x01, 1,   2,   0x1f, 0x20};

// splitmix64: tiny, fast, and the same sequence on every platform.
struct Rng {
  uint64_t state;
  uint64_t next() {
    uint64_t z = (state += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
  }
  size_t below(size_t n) { return n == 0 ? 0 : static_cast<size_t>(next() % n); }
};

void mutate_once(std::string& s, const std::vector<std::string>& corpus, Rng& rng) {
  switch (rng.below(8)) {
    case 0:  // flip a bit
      if (!s.empty()) s[rng.below(s.size())] ^= static_cast<char>(1u << rng.below(8));
      break;
    case 1:  // overwrite a byte with an interesting one
      if (!s.empty()) s[rng.below(s.size())] = static_cast<char>(kBytes[rng.below(sizeof kBytes)]);
      break;
    case 2:  // insert an interesting byte
      s.insert(s.begin() + static_cast<ptrdiff_t>(rng.below(s.size() + 1)),
               static_cast<char>(kBytes[rng.below(sizeof kBytes)]));
      break;
    case 3: {  // insert a protocol token
      std::string_view token = kTokens[rng.below(std::size(kTokens))];
      s.insert(rng.below(s.size() + 1), token);
      break;
    }
    case 4: {  // erase a span
      if (s.empty()) break;
      size_t at = rng.below(s.size());
      s.erase(at, 1 + rng.below(std::min<size_t>(16, s.size() - at)));
      break;
    }
    case 5: {  // duplicate a span
      if (s.empty()) break;
      size_t at = rng.below(s.size());
      std::string span = s.substr(at, 1 + rng.below(std::min<size_t>(64, s.size() - at)));
      s.insert(rng.below(s.size() + 1), span);
      break;
    }
    case 6: {  // splice: our prefix, another input's suffix
      const std::string& other = corpus[rng.below(corpus.size())];
      s = s.substr(0, rng.below(s.size() + 1)) + other.substr(rng.below(other.size() + 1));
      break;
    }
    default:  // the control bytes at the front (cut points, option bits: up to 4)
      if (!s.empty()) s[rng.below(std::min<size_t>(4, s.size()))] = static_cast<char>(rng.next());
      break;
  }
  if (s.size() > kMaxInputBytes) s.resize(kMaxInputBytes);
}

// The crash handler writes the input being run here (no allocation in the handler).
const std::string* g_current_input = nullptr;
char g_crash_path[256] = "";

// write(2) until done or failed: async-signal-safe, unlike stdio.
void write_fully(int fd, const char* data, size_t len) {
  while (len > 0) {
    const ssize_t n = ::write(fd, data, len);
    if (n <= 0) return;
    data += n;
    len -= static_cast<size_t>(n);
  }
}

void on_fatal_signal(int sig) {
  if (g_current_input != nullptr && g_crash_path[0] != '\0') {
    const int fd = ::open(g_crash_path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd >= 0) {
      write_fully(fd, g_current_input->data(), g_current_input->size());
      ::close(fd);
    }
    static const char kMsg[] = "fuzz_regression: failing input written to ";
    write_fully(2, kMsg, sizeof kMsg - 1);
    write_fully(2, g_crash_path, std::strlen(g_crash_path));
    write_fully(2, "\n", 1);
  }
  std::signal(sig, SIG_DFL);
  std::raise(sig);
}

std::vector<std::string> read_corpus(const std::filesystem::path& dir) {
  std::vector<std::filesystem::path> files;
  for (const auto& entry : std::filesystem::directory_iterator(dir))
    if (entry.is_regular_file()) files.push_back(entry.path());
  std::sort(files.begin(), files.end());  // directory order is not stable across file systems
  std::vector<std::string> inputs;
  for (const auto& file : files) {
    std::ifstream in(file, std::ios::binary);
    std::ostringstream text;
    text << in.rdbuf();
    inputs.push_back(text.str());
  }
  return inputs;
}

// FNV-1a: std::hash differs between standard libraries; this does not.
uint64_t fnv1a(std::string_view text) {
  uint64_t h = 0xcbf29ce484222325ULL;
  for (char c : text)
    h = (h ^ static_cast<uint8_t>(c)) * 0x100000001b3ULL;
  return h;
}

void run(const Target& target, const std::vector<std::string>& corpus, size_t iterations,
         uint64_t seed) {
  std::snprintf(g_crash_path, sizeof g_crash_path, "fuzz-regression-crash-%s.bin", target.name);
  const auto start = std::chrono::steady_clock::now();
  std::string input;
  g_current_input = &input;
  for (const std::string& seed_input : corpus) {
    input = seed_input;
    target.entry(reinterpret_cast<const uint8_t*>(input.data()), input.size());
  }
  // Each target gets its own sequence: adding a target does not change another's inputs.
  Rng rng{seed ^ fnv1a(target.name)};
  for (size_t i = 0; i < iterations; ++i) {
    input = corpus[rng.below(corpus.size())];
    for (size_t n = 1 + rng.below(4); n > 0; --n)
      mutate_once(input, corpus, rng);
    target.entry(reinterpret_cast<const uint8_t*>(input.data()), input.size());
  }
  g_current_input = nullptr;
  const double ms =
      std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
  std::printf("%-20s %3zu corpus inputs, %zu mutated inputs, %.0f ms\n", target.name, corpus.size(),
              iterations, ms);
}

}  // namespace

int main(int argc, char** argv) {
  std::filesystem::path corpus_dir = SG_FUZZ_CORPUS_DIR;
  size_t iterations = 20000;
  uint64_t seed = 20261126;
  std::vector<std::string> only;
  for (int i = 1; i < argc; ++i) {
    std::string_view arg = argv[i];
    if (arg == "--corpus" && i + 1 < argc) {
      corpus_dir = argv[++i];
    } else if (arg == "--iterations" && i + 1 < argc) {
      iterations = std::stoul(argv[++i]);
    } else if (arg == "--seed" && i + 1 < argc) {
      seed = std::stoull(argv[++i]);
    } else if (!arg.empty() && arg[0] != '-') {
      only.emplace_back(arg);
    } else {
      std::fprintf(stderr, "usage: %s [--corpus DIR] [--iterations N] [--seed S] [TARGET...]\n",
                   argv[0]);
      return 2;
    }
  }
  std::setvbuf(stdout, nullptr, _IOLBF, 0);  // the figures so far survive an abort
  for (int sig : {SIGABRT, SIGSEGV, SIGBUS, SIGFPE, SIGILL})
    std::signal(sig, on_fatal_signal);

  // Every corpus directory belongs to a target, and every target has a corpus.
  int status = 0;
  for (const auto& entry : std::filesystem::directory_iterator(corpus_dir)) {
    const std::string name = entry.path().filename().string();
    if (std::none_of(std::begin(kTargets), std::end(kTargets),
                     [&](const Target& t) { return name == t.name; })) {
      std::fprintf(stderr, "corpus directory %s names no fuzz target\n", name.c_str());
      status = 1;
    }
  }
  for (const std::string& name : only) {
    if (std::none_of(std::begin(kTargets), std::end(kTargets),
                     [&](const Target& t) { return name == t.name; })) {
      std::fprintf(stderr, "no fuzz target named %s\n", name.c_str());
      return 2;
    }
  }
  for (const Target& target : kTargets) {
    if (!only.empty() && std::find(only.begin(), only.end(), target.name) == only.end()) continue;
    const std::filesystem::path dir = corpus_dir / target.name;
    if (!std::filesystem::is_directory(dir)) {
      std::fprintf(stderr, "no corpus for fuzz target %s (%s)\n", target.name, dir.c_str());
      status = 1;
      continue;
    }
    std::vector<std::string> corpus = read_corpus(dir);
    if (corpus.empty()) corpus.emplace_back();
    run(target, corpus, iterations, seed);
  }
  return status;
}
