<?php
// Checks sessiongate's X-Session-Signature ([upstream] sign = true). README: "Signed identity header".
// Usage: sg_verify($_SERVER['REQUEST_METHOD'], $_SERVER['REQUEST_URI'], getallheaders(), [$key])
function sg_verify(string $method, string $target, array $headers, array $keys, int $maxSkew = 60,
                   string $prefix = 'x-session-', ?int $now = null): bool {
    $h = array_change_key_case($headers, CASE_LOWER);
    if (!preg_match('/^v1; kid=([0-9a-f]{16}); t=(\d+); sig=([A-Za-z0-9_-]{43})$/', $h[$prefix . 'signature'] ?? '', $m)) return false;
    $key = null;
    foreach ($keys as $k) if (substr(hash('sha256', 'sessiongate-kid-v1' . $k), 0, 16) === $m[1]) $key = $k;
    if ($key === null || abs(($now ?? time()) - (int)$m[2]) > $maxSkew) return false;
    $lines = ['v1', $method, $target];
    $signed = array_filter($h, fn($n) => str_starts_with($n, $prefix) && $n !== $prefix . 'signature', ARRAY_FILTER_USE_KEY);
    ksort($signed, SORT_STRING);
    foreach ($signed as $n => $v) $lines[] = "$n:$v";
    $lines[] = $m[2];
    $mac = rtrim(strtr(base64_encode(hash_hmac('sha256', implode("\n", $lines), $key, true)), '+/', '-_'), '=');
    return hash_equals($mac, $m[3]);
}
