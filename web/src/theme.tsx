import { createContext, useContext, useEffect, useMemo, useState, type ReactNode } from "react";
import { CssBaseline, ThemeProvider, createTheme, useMediaQuery } from "@mui/material";

/** `system` follows the operating system's light or dark preference. */
export type ColorModePreference = "system" | "light" | "dark";

const STORAGE_KEY = "patchdeck.colorMode";

// System fonts only: the UI must work offline, so no web fonts are loaded.
const SYSTEM_FONTS = [
  "system-ui",
  "-apple-system",
  '"Segoe UI"',
  "Roboto",
  '"Helvetica Neue"',
  "Arial",
  '"Noto Sans"',
  '"Liberation Sans"',
  "sans-serif",
].join(",");
export const MONO_FONTS = ['ui-monospace', '"SFMono-Regular"', "Menlo", "Consolas", '"Liberation Mono"', "monospace"].join(
  ",",
);

function readPreference(): ColorModePreference {
  try {
    const v = window.localStorage.getItem(STORAGE_KEY);
    return v === "light" || v === "dark" ? v : "system";
  } catch {
    return "system";
  }
}

interface ColorModeContextValue {
  preference: ColorModePreference;
  mode: "light" | "dark";
  setPreference: (p: ColorModePreference) => void;
}

const ColorModeContext = createContext<ColorModeContextValue | null>(null);

export function useColorMode(): ColorModeContextValue {
  const ctx = useContext(ColorModeContext);
  if (!ctx) throw new Error("useColorMode outside AppThemeProvider");
  return ctx;
}

export function makeTheme(mode: "light" | "dark") {
  return createTheme({
    palette: {
      mode,
      primary: { main: mode === "dark" ? "#90caf9" : "#1565c0" },
      background: mode === "dark" ? { default: "#0f1214", paper: "#161a1d" } : { default: "#f5f7fa", paper: "#ffffff" },
    },
    typography: { fontFamily: SYSTEM_FONTS, button: { textTransform: "none", fontWeight: 600 } },
    shape: { borderRadius: 8 },
    components: {
      MuiCssBaseline: {
        styleOverrides: (theme) => ({
          // A visible focus ring for keyboard users on everything focusable.
          ":focus-visible": {
            outline: `2px solid ${theme.palette.primary.main}`,
            outlineOffset: 2,
          },
          "code, kbd, pre, samp": { fontFamily: MONO_FONTS },
        }),
      },
      MuiTextField: { defaultProps: { fullWidth: true, margin: "normal" } },
    },
  });
}

export function AppThemeProvider({ children }: { children: ReactNode }) {
  const systemDark = useMediaQuery("(prefers-color-scheme: dark)", { noSsr: true });
  const [preference, setPreferenceState] = useState<ColorModePreference>(readPreference);
  const mode = preference === "system" ? (systemDark ? "dark" : "light") : preference;

  useEffect(() => {
    try {
      if (preference === "system") window.localStorage.removeItem(STORAGE_KEY);
      else window.localStorage.setItem(STORAGE_KEY, preference);
    } catch {
      // Storage may be disabled; the choice then lasts for this page only.
    }
  }, [preference]);

  const theme = useMemo(() => makeTheme(mode), [mode]);
  const value = useMemo(() => ({ preference, mode, setPreference: setPreferenceState }), [preference, mode]);

  return (
    <ColorModeContext.Provider value={value}>
      <ThemeProvider theme={theme}>
        <CssBaseline enableColorScheme />
        {children}
      </ThemeProvider>
    </ColorModeContext.Provider>
  );
}
