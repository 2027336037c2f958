#include "proxy_core/policy_keys.h"

#include <doctest/doctest.h>
#include <stdlib.h>

#include <filesystem>
#include <fstream>

namespace sg {
namespace {

struct KeyDir {
  std::string path;
  KeyDir() {
    path = (std::filesystem::temp_directory_path() / "sgkeysXXXXXX").string();
    REQUIRE(mkdtemp(path.data()) != nullptr);
  }
  ~KeyDir() { std::filesystem::remove_all(path); }
  std::string write(const std::string& name, const std::string& bytes) {
    std::ofstream(path + "/" + name, std::ios::binary) << bytes;
    return path + "/" + name;
  }
};

TEST_CASE("policy keys: nothing is loaded while the features are off") {
  std::string error;
  const auto keys = load_policy_keys(Config{}, error);
  REQUIRE(keys);
  CHECK_FALSE(keys->csrf.has_value());
  CHECK(keys->signing.empty());
}

TEST_CASE("policy keys: signing keys in file order, the first one signs") {
  KeyDir dir;
  Config c;
  c.upstream.sign = true;
  c.upstream.sign_key_file = {dir.write("a", std::string(32, 'a')),
                              dir.write("b", std::string(40, 'b'))};
  std::string error;
  const auto keys = load_policy_keys(c, error);
  REQUIRE(keys);
  REQUIRE(keys->signing.size() == 2);
  CHECK(keys->signing[0].kid() == SigningKey(std::string(32, 'a')).kid());
  CHECK(keys->signing[1].kid() == SigningKey(std::string(40, 'b')).kid());
}

TEST_CASE("policy keys: a short or missing key file is an error naming it") {
  KeyDir dir;
  Config c;
  c.upstream.sign = true;
  c.upstream.sign_key_file = {dir.write("short", std::string(31, 's'))};
  std::string error;
  CHECK(load_policy_keys(c, error) == nullptr);
  CHECK(error == dir.path + "/short holds 31 bytes; it needs at least 32 random bytes");
  c.upstream.sign_key_file = {dir.path + "/missing"};
  CHECK(load_policy_keys(c, error) == nullptr);
  CHECK(error.find("cannot read " + dir.path + "/missing") == 0);
}

TEST_CASE("policy keys: the CSRF key from its file, or one random key kept across loads") {
  KeyDir dir;
  Config c;
  c.csrf.mode = CsrfMode::kToken;
  std::string error;
  const auto first = load_policy_keys(c, error);
  const auto reload = load_policy_keys(c, error);
  REQUIRE(first);
  REQUIRE(reload);
  TokenHash live{};
  CHECK(first->csrf->token_for(live) == reload->csrf->token_for(live));
  c.csrf.secret_file = dir.write("csrf", std::string(32, 'c'));
  const auto from_file = load_policy_keys(c, error);
  REQUIRE(from_file);
  CHECK(from_file->csrf->token_for(live) == CsrfKey(std::string(32, 'c')).token_for(live));
  CHECK(from_file->csrf->token_for(live) != first->csrf->token_for(live));
}

}  // namespace
}  // namespace sg
