// What to do with a request header whose name contains '_' (nginx's underscores_in_headers): an
// upstream that maps headers to CGI-style variables cannot tell X_User from X-User, so such a
// name could smuggle past our own header handling. Part of the HTTP grammar layer; the
// configuration (server.underscore_headers) picks one.
#pragma once

namespace sg {

enum class UnderscorePolicy { kReject, kDrop };

}  // namespace sg
