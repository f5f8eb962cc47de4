DROP TABLE autodocs_rate_window;
