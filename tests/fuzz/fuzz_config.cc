// Fuzz target: gateway.toml text through load_config_string (toml++ and every key reader and
// validator), and the value parsers it is built on.
//
// Input: the TOML text. The text is also read as a duration, a size and a listen address.
//
// Invariants:
// - loading never throws out of load_config_string and never crashes (libFuzzer reports both);
// - a Config comes back exactly when there is no error; every diagnostic has a message, names the
//   source and has line >= 0 and column >= 0 (0 = no single place);
// - an accepted Config renders to TOML that loads without error into a Config that renders the
//   same (config_render.cc promises "loading the output yields the same Config");
// - parse_duration/format_duration and parse_size/format_size round-trip.
#include <string>
#include <string_view>

#include "proxy_core/config/config_loader.h"
#include "tests/fuzz/fuzz_support.h"

namespace {

void check_diagnostics(const sg::ConfigLoadResult& result, const std::string& source) {
  SG_FUZZ_CHECK(result.config.has_value() == result.errors.empty());
  for (const auto* list : {&result.errors, &result.warnings}) {
    for (const sg::ConfigDiagnostic& d : *list) {
      SG_FUZZ_CHECK(d.line >= 0 && d.column >= 0);
      SG_FUZZ_CHECK(!d.message.empty());
      SG_FUZZ_CHECK(d.file == source);
      SG_FUZZ_CHECK(!d.format().empty());
    }
  }
}

}  // namespace

SG_FUZZ_ENTRY(config) {
  const std::string_view text = sg_fuzz::as_text(data, size);

  const std::string source = "fuzz.toml";
  const sg::ConfigLoadResult result = sg::load_config_string(text, source);
  check_diagnostics(result, source);
  if (result.config) {
    const std::string rendered = sg::render_effective_config(*result.config);
    const std::string again_source = "rendered.toml";
    const sg::ConfigLoadResult again = sg::load_config_string(rendered, again_source);
    check_diagnostics(again, again_source);
    if (!again.errors.empty()) {
      std::fprintf(stderr, "rendered config does not load: %s\n--- rendered:\n%s\n",
                   again.errors[0].format().c_str(), rendered.c_str());
    }
    SG_FUZZ_CHECK(again.errors.empty());
    SG_FUZZ_CHECK(sg::render_effective_config(*again.config) == rendered);
  }

  if (const auto ms = sg::parse_duration(text)) {
    const std::string spelled = sg::format_duration(*ms);
    SG_FUZZ_CHECK(sg::parse_duration(spelled) == ms);
    SG_FUZZ_CHECK(sg::format_duration(*sg::parse_duration(spelled)) == spelled);
  }
  if (const auto bytes = sg::parse_size(text)) {
    SG_FUZZ_CHECK(sg::parse_size(sg::format_size(*bytes)) == bytes);
  }
  if (const auto endpoint = sg::parse_listen_address(text)) {
    SG_FUZZ_CHECK(!endpoint->host.empty());
  }
  return 0;
}
