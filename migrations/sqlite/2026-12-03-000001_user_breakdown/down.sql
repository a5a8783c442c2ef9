DROP TABLE daily_user_breakdown;
