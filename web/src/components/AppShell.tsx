import { useState, type ReactElement, type ReactNode } from "react";
import { NavLink, Outlet, useNavigate } from "react-router-dom";
import {
  AppBar,
  Avatar,
  Box,
  Button,
  Container,
  Divider,
  Drawer,
  IconButton,
  List,
  ListItemButton,
  ListItemIcon,
  ListItemText,
  Menu,
  MenuItem,
  Toolbar,
  Tooltip,
  Typography,
} from "@mui/material";
import MenuIcon from "@mui/icons-material/Menu";
import DashboardIcon from "@mui/icons-material/Dashboard";
import DnsIcon from "@mui/icons-material/Dns";
import WorkspacesIcon from "@mui/icons-material/Workspaces";
import EventIcon from "@mui/icons-material/Event";
import VpnKeyIcon from "@mui/icons-material/VpnKey";
import PeopleIcon from "@mui/icons-material/People";
import VerifiedUserIcon from "@mui/icons-material/VerifiedUser";
import SettingsIcon from "@mui/icons-material/Settings";
import ReceiptLongIcon from "@mui/icons-material/ReceiptLong";
import AccountCircleIcon from "@mui/icons-material/AccountCircle";
import SecurityIcon from "@mui/icons-material/Security";
import LogoutIcon from "@mui/icons-material/Logout";
import HowToRegIcon from "@mui/icons-material/HowToReg";
import GppMaybeIcon from "@mui/icons-material/GppMaybe";
import RadarIcon from "@mui/icons-material/Radar";
import RocketLaunchIcon from "@mui/icons-material/RocketLaunch";
import EngineeringIcon from "@mui/icons-material/Engineering";
import NotificationsIcon from "@mui/icons-material/Notifications";
import { useMe, useSignOut } from "../auth/session";
import { useLiveEvents } from "../api/events";
import { ColorModeMenu } from "./ColorModeMenu";

const DRAWER_WIDTH = 248;

export interface NavItem {
  to: string;
  label: string;
  icon: ReactElement;
  adminOnly?: boolean;
}

export const NAV_ITEMS: NavItem[] = [
  { to: "/", label: "Dashboard", icon: <DashboardIcon /> },
  { to: "/hosts", label: "Hosts", icon: <DnsIcon /> },
  { to: "/deployments", label: "Deployments", icon: <RocketLaunchIcon /> },
  { to: "/groups", label: "Groups", icon: <WorkspacesIcon /> },
  { to: "/maintenance-windows", label: "Maintenance windows", icon: <EventIcon /> },
  { to: "/registration-tokens", label: "Registration tokens", icon: <VpnKeyIcon />, adminOnly: true },
  { to: "/enrollments", label: "Enrollments", icon: <HowToRegIcon />, adminOnly: true },
  { to: "/discovery", label: "Discovery", icon: <RadarIcon />, adminOnly: true },
  { to: "/users", label: "Users", icon: <PeopleIcon />, adminOnly: true },
  { to: "/certificates", label: "Certificates", icon: <VerifiedUserIcon />, adminOnly: true },
  { to: "/workers", label: "Workers", icon: <EngineeringIcon />, adminOnly: true },
  { to: "/settings", label: "Settings", icon: <SettingsIcon />, adminOnly: true },
  { to: "/notifications", label: "Notifications", icon: <NotificationsIcon />, adminOnly: true },
  { to: "/audit-log", label: "Audit log", icon: <ReceiptLongIcon />, adminOnly: true },
  { to: "/security-events", label: "Security health", icon: <GppMaybeIcon />, adminOnly: true },
];

function Brand() {
  return (
    <Typography variant="h6" component="span" noWrap sx={{ fontWeight: 600, letterSpacing: 0.2 }}>
      Patchdeck
    </Typography>
  );
}

function SkipLink() {
  return (
    <Box
      component="a"
      href="#main"
      sx={{
        position: "absolute",
        left: 8,
        top: -48,
        zIndex: (t) => t.zIndex.tooltip + 1,
        px: 2,
        py: 1,
        bgcolor: "background.paper",
        color: "text.primary",
        borderRadius: 1,
        "&:focus": { top: 8 },
      }}
    >
      Skip to content
    </Box>
  );
}

function NavList({ onNavigate, isAdmin }: { onNavigate?: () => void; isAdmin: boolean }) {
  return (
    <List component="nav" aria-label="Main" sx={{ px: 1 }}>
      {NAV_ITEMS.filter((i) => isAdmin || !i.adminOnly).map((item) => (
        <ListItemButton
          key={item.to}
          component={NavLink}
          to={item.to}
          end={item.to === "/"}
          onClick={onNavigate}
          sx={{
            borderRadius: 1,
            mb: 0.25,
            "&.active": {
              bgcolor: "action.selected",
              color: "primary.main",
              "& .MuiListItemIcon-root": { color: "primary.main" },
            },
          }}
        >
          <ListItemIcon sx={{ minWidth: 40 }}>{item.icon}</ListItemIcon>
          <ListItemText primary={item.label} />
        </ListItemButton>
      ))}
    </List>
  );
}

function UserMenu() {
  const me = useMe();
  const signOut = useSignOut();
  const navigate = useNavigate();
  const [anchor, setAnchor] = useState<HTMLElement | null>(null);
  const user = me.data?.user;
  if (!user) return null;
  const name = user.display_name || user.username;
  const go = (to: string) => {
    setAnchor(null);
    navigate(to);
  };
  return (
    <>
      <Tooltip title="Account">
        <IconButton
          color="inherit"
          aria-label={`Account menu for ${user.username}`}
          aria-haspopup="menu"
          aria-expanded={anchor ? "true" : undefined}
          aria-controls={anchor ? "user-menu" : undefined}
          onClick={(e) => setAnchor(e.currentTarget)}
          sx={{ ml: 0.5 }}
        >
          <Avatar sx={{ width: 32, height: 32, fontSize: 16, bgcolor: "secondary.main" }}>
            {name.charAt(0).toUpperCase()}
          </Avatar>
        </IconButton>
      </Tooltip>
      <Menu
        id="user-menu"
        anchorEl={anchor}
        open={Boolean(anchor)}
        onClose={() => setAnchor(null)}
        anchorOrigin={{ vertical: "bottom", horizontal: "right" }}
        transformOrigin={{ vertical: "top", horizontal: "right" }}
      >
        <Box sx={{ px: 2, py: 1 }}>
          <Typography variant="subtitle2">{name}</Typography>
          <Typography variant="body2" color="text.secondary">
            {user.username} · {user.role}
          </Typography>
        </Box>
        <Divider />
        <MenuItem onClick={() => go("/account")}>
          <ListItemIcon>
            <AccountCircleIcon fontSize="small" />
          </ListItemIcon>
          Account
        </MenuItem>
        <MenuItem onClick={() => go("/account/mfa")}>
          <ListItemIcon>
            <SecurityIcon fontSize="small" />
          </ListItemIcon>
          Two-factor authentication
        </MenuItem>
        <Divider />
        <MenuItem
          onClick={() => {
            setAnchor(null);
            void signOut();
          }}
        >
          <ListItemIcon>
            <LogoutIcon fontSize="small" />
          </ListItemIcon>
          Sign out
        </MenuItem>
      </Menu>
    </>
  );
}

/** The signed-in app: app bar, navigation drawer (a temporary one on small screens) and the page. */
export function AppShell() {
  const me = useMe();
  const [mobileOpen, setMobileOpen] = useState(false);
  // Live command and host events keep every page's data fresh.
  useLiveEvents();
  const isAdmin = me.data?.user.role === "admin";

  const drawer = (
    <>
      <Toolbar />
      <Box sx={{ overflow: "auto", py: 1 }}>
        <NavList isAdmin={isAdmin} onNavigate={() => setMobileOpen(false)} />
      </Box>
    </>
  );

  return (
    <Box sx={{ display: "flex", minHeight: "100vh" }}>
      <SkipLink />
      <AppBar position="fixed" elevation={0} sx={{ zIndex: (t) => t.zIndex.drawer + 1, borderBottom: 1, borderColor: "divider" }}>
        <Toolbar>
          <IconButton
            color="inherit"
            edge="start"
            aria-label="Open navigation"
            aria-controls="nav-drawer"
            aria-expanded={mobileOpen}
            onClick={() => setMobileOpen((o) => !o)}
            sx={{ mr: 1, display: { md: "none" } }}
          >
            <MenuIcon />
          </IconButton>
          <Brand />
          <Box sx={{ flexGrow: 1 }} />
          <ColorModeMenu />
          <UserMenu />
        </Toolbar>
      </AppBar>
      <Box component="aside" sx={{ width: { md: DRAWER_WIDTH }, flexShrink: { md: 0 } }}>
        <Drawer
          id="nav-drawer"
          variant="temporary"
          open={mobileOpen}
          onClose={() => setMobileOpen(false)}
          ModalProps={{ keepMounted: true }}
          sx={{ display: { xs: "block", md: "none" }, "& .MuiDrawer-paper": { width: DRAWER_WIDTH } }}
        >
          {drawer}
        </Drawer>
        <Drawer
          variant="permanent"
          open
          sx={{
            display: { xs: "none", md: "block" },
            "& .MuiDrawer-paper": { width: DRAWER_WIDTH, boxSizing: "border-box" },
          }}
        >
          {drawer}
        </Drawer>
      </Box>
      <Box
        component="main"
        id="main"
        tabIndex={-1}
        sx={{ flexGrow: 1, minWidth: 0, outline: "none" }}
      >
        <Toolbar />
        <Container maxWidth="lg" sx={{ py: { xs: 2, sm: 3 } }}>
          <Outlet />
        </Container>
      </Box>
    </Box>
  );
}

/** The layout of a restricted session: no navigation, only the task at hand and a way out. */
export function RestrictedLayout({ children }: { children: ReactNode }) {
  const signOut = useSignOut();
  return (
    <Box sx={{ minHeight: "100vh" }}>
      <SkipLink />
      <AppBar position="static" elevation={0} sx={{ borderBottom: 1, borderColor: "divider" }}>
        <Toolbar>
          <Brand />
          <Box sx={{ flexGrow: 1 }} />
          <ColorModeMenu />
          <Button color="inherit" startIcon={<LogoutIcon />} onClick={() => void signOut()}>
            Sign out
          </Button>
        </Toolbar>
      </AppBar>
      <Container component="main" id="main" tabIndex={-1} maxWidth="md" sx={{ py: { xs: 2, sm: 4 }, outline: "none" }}>
        {children}
      </Container>
    </Box>
  );
}
