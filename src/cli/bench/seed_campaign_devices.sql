-- The campaign bench's audience: devices $2+1…$3 of app $1, two per user
-- (c1, c2, …: an iOS and an Android device each, so half and half), in
-- five timezones, tagged `bench_campaign` (the campaign's segment, which
-- leaves out the users the urgent alerts go to).
INSERT INTO pushrelay.devices (app, user_id, platform, token, locale, timezone, tags)
SELECT $1, 'c' || (i + 1) / 2,
       CASE i % 2 WHEN 1 THEN 'ios' ELSE 'android' END,
       CASE i % 2 WHEN 1 THEN md5('ci' || i) || md5('cj' || i) ELSE 'bench-campaign:' || i END,
       CASE WHEN i % 3 = 0 THEN 'pt-BR' ELSE 'en' END,
       (ARRAY['Europe/Berlin', 'America/New_York', 'Asia/Tokyo', 'America/Sao_Paulo', 'UTC'])
           [1 + ((i + 1) / 2) % 5],
       '{bench_campaign}'
  FROM generate_series($2::int + 1, $3) i
