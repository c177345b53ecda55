import { useState } from "react";
import { IconButton, ListItemIcon, ListItemText, Menu, MenuItem, Tooltip } from "@mui/material";
import DarkModeIcon from "@mui/icons-material/DarkMode";
import LightModeIcon from "@mui/icons-material/LightMode";
import SettingsBrightnessIcon from "@mui/icons-material/SettingsBrightness";
import CheckIcon from "@mui/icons-material/Check";
import { useColorMode, type ColorModePreference } from "../theme";

const CHOICES: { value: ColorModePreference; label: string }[] = [
  { value: "system", label: "Follow the system" },
  { value: "light", label: "Light" },
  { value: "dark", label: "Dark" },
];

/** Light, dark or the system's choice; remembered in this browser. */
export function ColorModeMenu() {
  const { preference, mode, setPreference } = useColorMode();
  const [anchor, setAnchor] = useState<HTMLElement | null>(null);
  const icon =
    preference === "system" ? <SettingsBrightnessIcon /> : mode === "dark" ? <DarkModeIcon /> : <LightModeIcon />;
  return (
    <>
      <Tooltip title="Theme">
        <IconButton
          color="inherit"
          aria-label={`Theme: ${CHOICES.find((c) => c.value === preference)?.label ?? preference}`}
          aria-haspopup="menu"
          aria-expanded={anchor ? "true" : undefined}
          aria-controls={anchor ? "color-mode-menu" : undefined}
          onClick={(e) => setAnchor(e.currentTarget)}
        >
          {icon}
        </IconButton>
      </Tooltip>
      <Menu id="color-mode-menu" anchorEl={anchor} open={Boolean(anchor)} onClose={() => setAnchor(null)}>
        {CHOICES.map((c) => (
          <MenuItem
            key={c.value}
            selected={c.value === preference}
            role="menuitemradio"
            aria-checked={c.value === preference}
            onClick={() => {
              setPreference(c.value);
              setAnchor(null);
            }}
          >
            <ListItemIcon>{c.value === preference ? <CheckIcon fontSize="small" /> : null}</ListItemIcon>
            <ListItemText>{c.label}</ListItemText>
          </MenuItem>
        ))}
      </Menu>
    </>
  );
}
