-- Users u1…u$2 of app $1, each with an iOS and an Android device. With
-- $3 > 0, every $3-th user's tokens start with "dead", which the mock
-- answers as unregistered.
INSERT INTO pushrelay.devices (app, user_id, platform, token, locale)
SELECT $1, 'u' || i, p.platform,
       CASE WHEN $3 > 0 AND i % $3 = 0 THEN 'dead' ELSE '' END
       || CASE p.platform WHEN 'ios' THEN md5('i' || i) || md5('j' || i) ELSE 'bench-android:' || i END,
       CASE WHEN i % 3 = 0 THEN 'pt-BR' ELSE 'en' END
  FROM generate_series(1, $2) i, (VALUES ('ios'), ('android')) p(platform)
