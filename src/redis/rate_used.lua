-- RedisRateLimitStore: units counted in one bucket at ARGV[1] (keys and kind as rate_acquire.lua).
-- ARGV: now, kind, window_ms. Read-only: expired charges are skipped, not dropped.
if ARGV[2] == '1' then
  return tonumber(redis.call('GET', KEYS[1]) or '0')
end
local sum = 0
local live = redis.call('ZRANGEBYSCORE', KEYS[1], '(' .. (tonumber(ARGV[1]) - tonumber(ARGV[3])), '+inf')
for _, at in ipairs(live) do
  sum = sum + tonumber(redis.call('HGET', KEYS[2], at) or '0')
end
return sum
