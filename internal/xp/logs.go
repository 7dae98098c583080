package xp

import (
	"context"
	"fmt"
)

// Logs returns a page of the member's gamification log, newest first,
// skipping offset rows, and how many rows the member has in all.
func (s *Service) Logs(ctx context.Context, communityID, userID string, offset, limit int) ([]Log, int, error) {
	var total int
	if err := s.d.DB.QueryRow(ctx, "SELECT COUNT(*) FROM gamification_logs WHERE community_id = ? AND user_id = ?",
		communityID, userID).Scan(&total); err != nil {
		return nil, 0, fmt.Errorf("count gamification logs: %w", err)
	}
	rows, err := s.d.DB.Query(ctx, "SELECT "+logColumns+" FROM gamification_logs WHERE community_id = ? AND user_id = ? ORDER BY seq DESC LIMIT ? OFFSET ?",
		communityID, userID, limit, offset)
	if err != nil {
		return nil, 0, fmt.Errorf("read gamification logs: %w", err)
	}
	defer rows.Close()
	out := []Log{}
	for rows.Next() {
		l, err := scanLog(rows)
		if err != nil {
			return nil, 0, err
		}
		out = append(out, l)
	}
	if err := rows.Err(); err != nil {
		return nil, 0, fmt.Errorf("read gamification logs: %w", err)
	}
	return out, total, nil
}
