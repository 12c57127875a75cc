SELECT id, app, name, users, created_at FROM pushrelay.user_lists
 WHERE id = $1 AND ($2::text[] IS NULL OR app = ANY($2))
